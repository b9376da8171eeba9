//! Status codes, the per-thread last-error message, and the fence that
//! keeps panics from crossing into C.

use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

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
    /// The database handle is closed, or unusable after a failure that
    /// leaves its files' state unknown to it (a failed fsync, a failed
    /// restart or cut of the WAL): open the database again to go on.
    OBJ_CLOSED = 9,
    /// A bug in obj (an internal panic); the message says where.
    OBJ_INTERNAL = 10,
    /// A write would break a constraint (a duplicate key in a unique
    /// index); nothing of that write was applied.
    OBJ_CONSTRAINT = 11,
}

/// This thread's last error message: a `CString` leaked into a pthread
/// key, so that a message recorded while the thread exits (from a pthread
/// key destructor, after the Rust thread-locals are gone) is freed too: a
/// key set during that phase gets its destructor in the next round, where
/// a Rust thread-local first touched then would never be destroyed.
/// The library is linked with `-z nodelete` (capi/build.rs): a thread
/// that exits after a `dlclose` still runs this key's destructor, which
/// must stay mapped. `None` if the process is out of keys: messages are
/// then not kept.
fn message_key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is writable; the destructor takes only what
        // `set_last_error` stores (a pointer from `CString::into_raw`).
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(free_message)) };
        (rc == 0).then_some(key)
    })
}

/// The key's destructor, at thread exit.
unsafe extern "C" fn free_message(message: *mut libc::c_void) {
    if !message.is_null() {
        // SAFETY: every non-NULL value of the key is a pointer from
        // `CString::into_raw`, freed once (here or when replaced).
        drop(unsafe { CString::from_raw(message.cast()) });
    }
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let Some(key) = message_key() else { return };
    let new = CString::new(message.replace('\0', "\\0")).unwrap_or_default().into_raw();
    // SAFETY: the key's values are this thread's own; the old one came
    // from `CString::into_raw` and nothing else holds it once replaced
    // (`obj_last_error`'s pointer is documented to last until this
    // thread's next call).
    unsafe {
        let old = libc::pthread_getspecific(key);
        if libc::pthread_setspecific(key, new.cast()) != 0 {
            // No memory for the thread's slot: keep the old message.
            drop(CString::from_raw(new));
            return;
        }
        free_message(old);
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
/// none). A call that succeeds leaves it as it was: test the status a
/// call returns, not this message, to tell whether it failed. The pointer stays valid until this thread's next obj_* call
/// other than `obj_last_error`. Never NULL. Thread-safe. Calls made while
/// the thread exits (from a pthread key destructor) work too, and their
/// message is freed with the thread.
#[no_mangle]
pub extern "C" fn obj_last_error() -> *const c_char {
    let Some(key) = message_key() else {
        return c"(no message: the process is out of thread-specific keys)".as_ptr();
    };
    // SAFETY: reads this thread's value of the key (NULL or a live CString).
    let message = unsafe { libc::pthread_getspecific(key) };
    if message.is_null() {
        c"".as_ptr()
    } else {
        message.cast::<c_char>().cast_const()
    }
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
