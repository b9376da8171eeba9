//! Link flags of the shared library.

fn main() {
    // The per-thread error message lives in a pthread key whose destructor
    // is in this library: a thread that exits after the host `dlclose`d it
    // would otherwise call into unmapped code. (A Rust thread-local with a
    // destructor used to pin the library the same way.)
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
