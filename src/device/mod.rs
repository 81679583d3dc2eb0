//! Devices. CPU always works. CUDA needs libtorch_cuda, which the CPU-only
//! set-up does not install and which the linker would drop anyway (nothing
//! references it), so it is loaded at run time when a CUDA device is asked
//! for (DESIGN.md 3): one binary for both set-ups. On the CPU, [`mkl`] lets
//! MKL's matrix products use the instruction sets of a non-Intel CPU and
//! [`allocator`] keeps freed memory for the next update.

use tch::Device;

pub mod allocator;
pub mod mkl;
pub use mkl::{MklDispatch, mkl_dispatch};

/// The CUDA device `index`, loading libtorch_cuda first; a clear error when
/// the CUDA build of torch or a GPU is missing.
pub fn cuda(index: usize) -> Result<Device, String> {
    if !tch::Cuda::is_available() {
        // SAFETY: loading a shared library runs its initialisers; this is
        // libtorch's own CUDA component, built for the libtorch we link.
        let loaded = unsafe { libloading::Library::new("libtorch_cuda.so") };
        match loaded {
            // Keep it loaded for the life of the process.
            Ok(library) => std::mem::forget(library),
            Err(e) => {
                return Err(format!(
                    "CUDA was asked for but libtorch_cuda cannot be loaded ({}); install the CUDA build with \
                     `scripts/setup.sh --cuda` (see docs/scaling.md)",
                    with_cause(&e)
                ));
            }
        }
    }
    if !tch::Cuda::is_available() {
        return Err("CUDA was asked for but no CUDA device is available".into());
    }
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        return Err(format!(
            "cuda:{index} was asked for but there are {count} CUDA devices"
        ));
    }
    Ok(Device::Cuda(index))
}

/// `e` and its sources, `: `-joined. libloading's message alone is "dlopen
/// failed"; the loader's own words (which library is missing) are its source.
fn with_cause(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_error_names_what_the_loader_said() {
        // SAFETY: the file does not exist, so nothing is loaded or run.
        let e = unsafe { libloading::Library::new("libchunkql_no_such_library.so") }.unwrap_err();
        let text = with_cause(&e);
        assert!(text.starts_with("dlopen failed: "), "{text}");
        assert!(text.contains("libchunkql_no_such_library.so"), "{text}");
    }
}
