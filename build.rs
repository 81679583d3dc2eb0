//! Puts libtorch's `lib/` on the run-time search path of every binary, test and
//! bench of this crate, so they start without `LD_LIBRARY_PATH`.
//! `LIBTORCH` comes from `.cargo/config.toml` (the project venv) or the caller.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let root = PathBuf::from(root);
        let lib = std::fs::canonicalize(&root).unwrap_or(root).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
