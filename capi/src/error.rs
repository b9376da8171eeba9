//! Status codes, the per-thread last-error message, and the fence that
//! keeps panics from crossing into C.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use obj_engine::Error;

/// The result of every obj_* call. Values are stable across versions.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum obj_status {
    /// Success.
    OBJ_OK = 0,
    /// A bad argument: NULL where a value is needed, invalid UTF-8, a wrong
    /// handle kind, an oversized key, a finished transaction, a write in a
    /// read transaction, a malformed query or document.
    OBJ_INVALID_ARGUMENT = 1,
    /// The operating system reported an I/O error.
    OBJ_IO = 2,
    /// The file is damaged (checksum mismatch, broken structure, truncated).
    OBJ_CORRUPTION = 3,
    /// A lock could not be taken in time (another writer or process).
    OBJ_BUSY = 4,
    /// A named thing (collection, document, index, namespace, file) does not exist.
    OBJ_NOT_FOUND = 5,
    /// An integrity check found problems (the message lists them).
    OBJ_INTEGRITY = 6,
    /// The file needs a feature this library lacks (e.g. a newer format).
    OBJ_UNSUPPORTED = 7,
    /// A missing or wrong encryption key.
    OBJ_ENCRYPTION = 8,
    /// The database handle is closed, or unusable after a failed fsync.
    OBJ_CLOSED = 9,
    /// A bug in obj (an internal panic); the message says where.
    OBJ_INTERNAL = 10,
    /// A write would break a constraint (a duplicate key in a unique
    /// index); nothing of that write was applied.
    OBJ_CONSTRAINT = 11,
}

/// Room for a message recorded while the thread exits (NUL included).
const LATE_ERROR_LEN: usize = 512;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// The message of a call made after LAST_ERROR was destroyed at thread
    /// exit (from a pthread key destructor, which runs after the thread's
    /// Rust thread-locals are gone): NUL-terminated, cut to fit. It needs no
    /// destructor, so it is never destroyed and always reachable.
    static LATE_ERROR: RefCell<[u8; LATE_ERROR_LEN]> = const { RefCell::new([0; LATE_ERROR_LEN]) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let mut c = Some(CString::new(message.replace('\0', "\\0")).unwrap_or_default());
    if LAST_ERROR.try_with(|e| *e.borrow_mut() = c.take().unwrap_or_default()).is_err() {
        let c = c.unwrap_or_default();
        let text = c.as_bytes();
        let mut n = text.len().min(LATE_ERROR_LEN - 1);
        // Cut at a character boundary: the message stays valid UTF-8.
        while n > 0 && n < text.len() && (text[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        LATE_ERROR.with(|late| {
            let mut late = late.borrow_mut();
            late[..n].copy_from_slice(&text[..n]);
            late[n] = 0;
        });
    }
}

/// Maps an engine error to its status and records its message.
pub(crate) fn fail(err: &Error) -> obj_status {
    set_last_error(&err.to_string());
    match err {
        Error::Io { .. } => obj_status::OBJ_IO,
        Error::Corruption { .. } => obj_status::OBJ_CORRUPTION,
        Error::Busy(_) => obj_status::OBJ_BUSY,
        Error::NotFound(_) => obj_status::OBJ_NOT_FOUND,
        Error::InvalidArgument(_) => obj_status::OBJ_INVALID_ARGUMENT,
        Error::Unsupported(_) => obj_status::OBJ_UNSUPPORTED,
        Error::Encryption(_) => obj_status::OBJ_ENCRYPTION,
        Error::Integrity(_) => obj_status::OBJ_INTEGRITY,
        Error::Closed(_) => obj_status::OBJ_CLOSED,
        Error::Constraint(_) => obj_status::OBJ_CONSTRAINT,
        _ => obj_status::OBJ_INTERNAL,
    }
}

/// Runs `f`, turning its error into a status and a panic into
/// `OBJ_INTERNAL`. Every exported function body goes through this.
pub(crate) fn fence(f: impl FnOnce() -> Result<(), Error>) -> obj_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => obj_status::OBJ_OK,
        Ok(Err(e)) => fail(&e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"));
            obj_status::OBJ_INTERNAL
        }
    }
}

/// The message of the calling thread's most recent failed call ("" if
/// none). The pointer stays valid until this thread's next obj_* call
/// other than `obj_last_error`. Never NULL. Thread-safe. Calls made while
/// the thread exits (from a pthread key destructor) work too; their
/// messages are cut to 511 bytes.
#[no_mangle]
pub extern "C" fn obj_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or_else(|_| LATE_ERROR.with(|late| late.as_ptr().cast::<c_char>().cast_const()))
}

/// A short name of a status code ("OBJ_BUSY", ...), or
/// "OBJ_UNKNOWN_STATUS" for a value that is not one (a code from a newer
/// library, say). Takes an int, not an obj_status, so that any value a
/// caller holds is a valid argument. Never NULL; static storage.
#[no_mangle]
pub extern "C" fn obj_status_name(status: c_int) -> *const c_char {
    const NAMES: [(obj_status, &[u8]); 12] = [
        (obj_status::OBJ_OK, b"OBJ_OK\0"),
        (obj_status::OBJ_INVALID_ARGUMENT, b"OBJ_INVALID_ARGUMENT\0"),
        (obj_status::OBJ_IO, b"OBJ_IO\0"),
        (obj_status::OBJ_CORRUPTION, b"OBJ_CORRUPTION\0"),
        (obj_status::OBJ_BUSY, b"OBJ_BUSY\0"),
        (obj_status::OBJ_NOT_FOUND, b"OBJ_NOT_FOUND\0"),
        (obj_status::OBJ_INTEGRITY, b"OBJ_INTEGRITY\0"),
        (obj_status::OBJ_UNSUPPORTED, b"OBJ_UNSUPPORTED\0"),
        (obj_status::OBJ_ENCRYPTION, b"OBJ_ENCRYPTION\0"),
        (obj_status::OBJ_CLOSED, b"OBJ_CLOSED\0"),
        (obj_status::OBJ_INTERNAL, b"OBJ_INTERNAL\0"),
        (obj_status::OBJ_CONSTRAINT, b"OBJ_CONSTRAINT\0"),
    ];
    let name: &'static [u8] = NAMES
        .iter()
        .find(|(code, _)| *code as c_int == status)
        .map_or(b"OBJ_UNKNOWN_STATUS\0", |(_, name)| *name);
    name.as_ptr().cast()
}

/// The library version, e.g. "0.1.0" (the same as OBJ_VERSION_STRING in
/// the header the caller compiled against, unless a different library is
/// loaded at run time). Static storage.
#[no_mangle]
pub extern "C" fn obj_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
