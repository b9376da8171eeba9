//! Link flags of the shared library.

fn main() {
    // The per-thread error message lives in a pthread key whose destructor
    // is in this library: a thread that exits after the host `dlclose`d it
    // would otherwise call into unmapped code. (A Rust thread-local with a
    // destructor used to pin the library the same way.)
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "macos" && os != "windows" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
        // A SONAME of the ABI's major version, so that programs record
        // `libobj.so.0` and a later, incompatible major can be installed
        // beside it (`make install` makes the links).
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets it");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libobj.so.{major}");
    }
}
