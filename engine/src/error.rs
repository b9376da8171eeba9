//! The one error type of the engine.
//!
//! Every fallible public function returns [`Result<T>`]. Variants are stable:
//! the C ABI maps each to a status code and the Python package to an
//! exception class, so add variants only at the end of the list.

use std::fmt;
use std::io;

/// A page number: page 0 is the header page; pages are `page_size` bytes.
pub type PageNo = u32;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with a message that says what and where.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an I/O error (`context` says during what).
    Io {
        /// What the engine was doing, e.g. "writing WAL frame 12 of app.obj-wal".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The file's bytes are not what the engine wrote: a checksum mismatch,
    /// a B+tree invariant violation or an impossible header. `page` names the
    /// page where it was seen, when there is one.
    Corruption {
        /// The page on which the corruption was detected.
        page: Option<PageNo>,
        /// What was wrong.
        message: String,
    },
    /// A lock could not be taken within the busy timeout (another writer,
    /// another process holding the file).
    Busy(String),
    /// A named thing (tree, collection, document, index, namespace) does not exist.
    NotFound(String),
    /// The caller passed something unusable: an oversized key, a bad path,
    /// a malformed query, a use of a finished transaction.
    InvalidArgument(String),
    /// The file needs a feature this build does not have (e.g. a newer format version).
    Unsupported(String),
    /// A key is missing, wrong, or the file's encryption does not match.
    Encryption(String),
    /// `integrity_check` found problems; each string is one finding.
    Integrity(Vec<String>),
    /// The database handle can no longer be used (closed, or poisoned by a
    /// failed fsync whose outcome is unknown).
    Closed(String),
    /// A write would break a constraint (a unique index already holds the
    /// value); the write left no trace.
    Constraint(String),
}

impl Error {
    /// Builds an [`Error::Corruption`] naming `page`.
    pub fn corruption(page: impl Into<Option<PageNo>>, message: impl Into<String>) -> Self {
        Error::Corruption { page: page.into(), message: message.into() }
    }

    /// Builds an [`Error::Io`] with a context string.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// Builds an [`Error::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "I/O error while {context}: {source}"),
            Error::Corruption { page: Some(p), message } => {
                write!(f, "database corruption on page {p}: {message}")
            }
            Error::Corruption { page: None, message } => write!(f, "database corruption: {message}"),
            Error::Busy(m) => write!(f, "busy: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Encryption(m) => write!(f, "encryption error: {m}"),
            Error::Integrity(findings) => {
                write!(f, "integrity check found {} problem(s)", findings.len())?;
                for finding in findings.iter().take(10) {
                    write!(f, "; {finding}")?;
                }
                Ok(())
            }
            Error::Closed(m) => write!(f, "database handle unusable: {m}"),
            Error::Constraint(m) => write!(f, "constraint violated: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
