//! Puts libtorch's `lib/` on the run-time search path of every binary, test and
//! bench of this crate, so they start without `LD_LIBRARY_PATH`.
//! `LIBTORCH` comes from `.cargo/config.toml` (the project venv) or the caller.
//! Also sets `CHUNKQL_LIBTORCH` (libtorch's root) for the crate's code, and
//! exports `mkl_serv_intel_cpu_true` from them, so that libtorch's MKL
//! binds to chunkql's definition (src/device/mkl.rs).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=mkl_serv_intel_cpu_true");
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let root = PathBuf::from(root);
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let lib = root.join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // For the test that builds a stand-in libtorch_cuda against its headers.
        println!("cargo:rustc-env=CHUNKQL_LIBTORCH={}", root.display());
    }
}
