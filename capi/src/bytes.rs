//! Buffers returned to C, and decoding of C arguments (strings, byte
//! ranges, out-pointers) into Rust values with clear errors.

use std::ffi::{c_char, CStr};

use obj_engine::Error;

use crate::error::fence;
use crate::obj_status;

/// A byte buffer owned by the library. Free it with `obj_bytes_free`
/// (which resets it to {NULL, 0}); never with free(). The bytes are NOT
/// NUL-terminated, JSON text included: use `len` (printf("%.*s", (int)len,
/// data), or copy them into a string) rather than strstr, strlen or "%s".
#[repr(C)]
#[derive(Debug)]
pub struct obj_bytes {
    /// The bytes (NULL when `len` is 0 or after free).
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

impl obj_bytes {
    pub(crate) fn from_vec(v: Vec<u8>) -> obj_bytes {
        if v.is_empty() {
            return obj_bytes { data: std::ptr::null_mut(), len: 0 };
        }
        let boxed = v.into_boxed_slice();
        let len = boxed.len();
        obj_bytes { data: Box::into_raw(boxed).cast(), len }
    }
}

/// Frees a buffer the library returned and sets it to {NULL, 0}. NULL, or
/// a buffer already freed this way, is a no-op.
///
/// # Safety
/// `bytes` is NULL or points to an obj_bytes filled by this library and not
/// modified by the caller.
#[no_mangle]
pub unsafe extern "C" fn obj_bytes_free(bytes: *mut obj_bytes) {
    if bytes.is_null() {
        return;
    }
    // SAFETY: the caller passes a valid obj_bytes (documented contract).
    let b = unsafe { &mut *bytes };
    if !b.data.is_null() && b.len > 0 {
        // SAFETY: data/len came from Box<[u8]>::into_raw in from_vec.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(b.data, b.len)) });
    }
    b.data = std::ptr::null_mut();
    b.len = 0;
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// A byte-range argument; NULL is allowed only with length 0.
///
/// # Safety
/// `p` is NULL or valid for `len` bytes.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL but its length is {len}")));
    }
    // SAFETY: non-null and valid for len bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `value` through an out-pointer, which must not be NULL.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::invalid(format!("{what} out-pointer is NULL")));
    }
    // SAFETY: non-null and writable per the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes a lookup's result: `*found`, and `*out` the value, or {NULL, 0}
/// when there is none. Both out-pointers must not be NULL.
///
/// # Safety
/// `found` and `out` are NULL or writable.
pub(crate) unsafe fn put_found(
    found: *mut bool,
    out: *mut obj_bytes,
    value: Option<Vec<u8>>,
) -> Result<(), Error> {
    need(out, "out")?;
    // SAFETY: per this function's contract.
    unsafe {
        put(found, value.is_some(), "found")?;
        put_vec(out, value.unwrap_or_default(), "out")
    }
}

/// Writes `v` as a new buffer through an out-pointer, which must not be
/// NULL. The pointer is checked before the buffer is made: an `obj_bytes`
/// has no destructor, so one made for a NULL pointer would leak.
///
/// # Safety
/// `out` is NULL or valid for writing an `obj_bytes`.
pub(crate) unsafe fn put_vec(out: *mut obj_bytes, v: Vec<u8>, what: &str) -> Result<(), Error> {
    need(out, what)?;
    // SAFETY: checked non-null; writable per the caller's contract.
    unsafe { put(out, obj_bytes::from_vec(v), what) }
}

/// Checks an out-pointer before any work is done.
pub(crate) fn need<T>(out: *mut T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::invalid(format!("{what} out-pointer is NULL")));
    }
    Ok(())
}

/// Fills `out` with a copy of `len` bytes of `value` (free with
/// obj_bytes_free), for tests of the buffer contract from C. Mostly useful
/// to bindings' self-tests. Errors: OBJ_INVALID_ARGUMENT (NULL `out`,
/// NULL `value` with a non-zero `len`).
///
/// # Safety
/// `value` is valid for `len` bytes (or NULL with len 0); `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn obj_bytes_copy(value: *const u8, len: usize, out: *mut obj_bytes) -> obj_status {
    fence(|| {
        // Checked before the copy is made, which would leak otherwise.
        need(out, "out")?;
        // SAFETY: per this function's contract.
        let v = unsafe { arg_bytes(value, len, "value") }?.to_vec();
        // SAFETY: per this function's contract.
        unsafe { put_vec(out, v, "out") }
    })
}

/// Writes `value` through an out-pointer that may be NULL (then nothing).
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn put_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and writable per the caller's contract.
        unsafe { out.write(value) };
    }
}

/// An array argument; NULL is allowed only with length 0.
///
/// # Safety
/// `p` is NULL or valid for reading `n` values of `T`.
pub(crate) unsafe fn arg_slice<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], Error> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL but its length is {n}")));
    }
    // SAFETY: non-null and valid for n values per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A JSON text argument as a `&str` (it must be UTF-8).
pub(crate) fn json_text<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|e| Error::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// Parses one document (a JSON object in the engine's JSON text form).
pub(crate) fn parse_document(bytes: &[u8]) -> Result<obj_engine::Value, Error> {
    obj_engine::doc::json::document_from_json_slice(bytes)
}

/// A serde_json value as a returned buffer.
pub(crate) fn json_bytes(v: &serde_json::Value) -> obj_bytes {
    obj_bytes::from_vec(v.to_string().into_bytes())
}
