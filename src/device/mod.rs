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
///
/// The library is loaded before anything asks libtorch about CUDA, every
/// time (a second load is a no-op): libtorch looks up its CUDA hooks once
/// per process, at the first question, and a question asked before
/// libtorch_cuda has registered them gets "no CUDA" for good (the comment on
/// `at::detail::getCUDAHooks`). So also: ask for the device before any
/// other libtorch call that touches CUDA (`tch::manual_seed`, a backward
/// pass), as `train`, `resume` and `eval` do.
pub fn cuda(index: usize) -> Result<Device, String> {
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
    if !tch::Cuda::is_available() {
        return Err("CUDA was asked for but no CUDA device is available".into());
    }
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        let devices = match count {
            1 => "is 1 CUDA device (cuda:0)".to_string(),
            n => format!("are {n} CUDA devices"),
        };
        return Err(format!("cuda:{index} was asked for but there {devices}"));
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
    use std::ffi::{CStr, OsString};
    use std::process::Command;

    /// The advice after a failed load: `cuda` and `parse_device` give
    /// "CUDA was asked for but libtorch_cuda cannot be loaded (dlopen
    /// failed: <the loader's words>)" and then this.
    const INSTALL_ADVICE: &str =
        "; install the CUDA build with `scripts/setup.sh --cuda` (see docs/scaling.md)";

    /// Set in the child process: the folder of a broken `libtorch_cuda.so`,
    /// "as-is" to leave the loader alone, or [`STAND_IN`].
    const CHILD_MODE: &str = "CHUNKQL_TEST_CUDA_CHILD";

    /// Child mode: a stand-in `libtorch_cuda.so` that reports one device
    /// comes first on the search path.
    const STAND_IN: &str = "stand-in";

    /// A `libtorch_cuda.so` that registers libtorch's CUDA hooks, as the
    /// real one does when it loads, with one device and nothing else.
    const STAND_IN_SOURCE: &str = r#"
#include <ATen/detail/CUDAHooksInterface.h>
struct StandInHooks : at::CUDAHooksInterface {
  StandInHooks(at::CUDAHooksArgs) {}
  c10::DeviceIndex deviceCount() const override { return 1; }
  bool hasCUDA() const override { return true; }
};
namespace at { C10_REGISTER_CLASS(CUDAHooksRegistry, CUDAHooks, StandInHooks); }
"#;

    /// Runs `child_asks_for_cuda` in a fresh process of this test binary
    /// (libtorch_cuda, once loaded, stays loaded: that must not reach the
    /// other tests), with `mode` and the library search path `ld_path`
    /// first; panics with its output unless it passed.
    fn run_child(mode: &OsString, ld_path: Option<&std::path::Path>) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "device::tests::child_asks_for_cuda", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_MODE, mode);
        if let Some(dir) = ld_path {
            let mut path = OsString::from(dir);
            if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                path.push(":");
                path.push(old);
            }
            command.env("LD_LIBRARY_PATH", path);
        }
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && text.contains("1 passed"),
            "{text}"
        );
    }

    /// What `dlopen("libtorch_cuda.so")` says here, asked directly of the C
    /// library: `Err(dlerror())` or `Ok` (the library stays loaded).
    fn dlopen_libtorch_cuda() -> Result<(), String> {
        // SAFETY: a NUL-terminated name; loading runs libtorch_cuda's
        // initialisers, as `cuda` itself would.
        let handle = unsafe {
            libc::dlopen(
                c"libtorch_cuda.so".as_ptr(),
                libc::RTLD_LAZY | libc::RTLD_LOCAL,
            )
        };
        if handle.is_null() {
            // SAFETY: dlopen failed, so dlerror returns its message.
            Err(unsafe { CStr::from_ptr(libc::dlerror()) }
                .to_string_lossy()
                .into_owned())
        } else {
            Ok(())
        }
    }

    /// The child of the two tests below; does nothing in an ordinary run.
    #[test]
    #[ignore = "run by a_libtorch_cuda_that_cannot_be_loaded_is_a_clear_error and \
                asking_for_cuda_here_gives_a_gpu_or_a_clear_error"]
    fn child_asks_for_cuda() {
        let Some(mode) = std::env::var_os(CHILD_MODE) else {
            return;
        };
        let ask = |name: &str| crate::train::parse_device(name).map_err(|e| e.to_string());
        if mode != "as-is" && mode != STAND_IN {
            // A broken libtorch_cuda.so comes first on the search path: the
            // loader's words name it ("<dir>/libtorch_cuda.so: file too short").
            let expected = format!(
                "CUDA was asked for but libtorch_cuda cannot be loaded (dlopen failed: \
                 {}/libtorch_cuda.so: file too short){INSTALL_ADVICE}",
                mode.to_string_lossy()
            );
            assert_eq!(ask("cuda"), Err(expected.clone()));
            assert_eq!(ask("cuda:1"), Err(expected.clone()));
            assert_eq!(cuda(0), Err(expected.clone()));
            assert_eq!(cuda(1), Err(expected));
            assert!(!tch::Cuda::is_available());
            return;
        }
        if mode == STAND_IN {
            // A stand-in libtorch_cuda registering one CUDA device comes
            // first: asked first thing, as a run asks, cuda:0 is found.
            assert_eq!(ask("cuda"), Ok(Device::Cuda(0)));
            assert_eq!(
                ask("cuda:1"),
                Err("cuda:1 was asked for but there is 1 CUDA device (cuda:0)".into())
            );
            assert_eq!(tch::Cuda::device_count(), 1);
            return;
        }
        // As installed: on the CPU-only set-up (torch without its CUDA
        // packages) the load fails with the loader's words; with the CUDA
        // packages but no GPU (or no driver) it loads and finds no device;
        // on a GPU machine cuda:0 works and cuda:1 needs two GPUs. Asked
        // before this test loads anything itself (libtorch's first CUDA
        // question decides for the whole process).
        let (first, second) = (ask("cuda"), ask("cuda:1"));
        let loaded = dlopen_libtorch_cuda();
        match loaded {
            Err(loader) => {
                eprintln!("libtorch_cuda.so does not load here: {loader}");
                let expected = format!(
                    "CUDA was asked for but libtorch_cuda cannot be loaded \
                     (dlopen failed: {loader}){INSTALL_ADVICE}"
                );
                assert_eq!(first, Err(expected.clone()));
                assert_eq!(second, Err(expected));
            }
            Ok(()) if !tch::Cuda::is_available() => {
                eprintln!("libtorch_cuda.so loads here; no CUDA device");
                let expected = "CUDA was asked for but no CUDA device is available".to_string();
                assert_eq!(first, Err(expected.clone()));
                assert_eq!(second, Err(expected));
            }
            Ok(()) => {
                // A GPU machine: CUDA is available once libtorch_cuda is loaded.
                let count = tch::Cuda::device_count();
                eprintln!("libtorch_cuda.so loads here; {count} CUDA devices");
                assert_eq!(first, Ok(Device::Cuda(0)));
                if count >= 2 {
                    assert_eq!(second, Ok(Device::Cuda(1)));
                } else {
                    // One device (count < 2 once cuda:0 worked).
                    assert_eq!(
                        second,
                        Err("cuda:1 was asked for but there is 1 CUDA device (cuda:0)".into())
                    );
                }
            }
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_libtorch_cuda_that_cannot_be_loaded_is_a_clear_error() {
        // An empty libtorch_cuda.so on LD_LIBRARY_PATH (searched before the
        // binary's RUNPATH) fails to load on every machine, GPU or not, as
        // the real one does where the CUDA packages are missing.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libtorch_cuda.so"), b"").unwrap();
        run_child(&dir.path().as_os_str().to_owned(), Some(dir.path()));
    }

    /// The load order on a machine without a GPU: a stand-in
    /// libtorch_cuda (compiled here with g++ against the linked libtorch's
    /// headers) registers one device when loaded, and `cuda` finds it. Asked
    /// before the load (as `cuda` did until 2026-12-04), libtorch would
    /// answer "no CUDA" for the rest of the process, on a GPU too.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn libtorch_cuda_is_loaded_before_libtorch_is_asked_about_cuda() {
        let Some(root) = option_env!("CHUNKQL_LIBTORCH") else {
            panic!("no CHUNKQL_LIBTORCH: build.rs sets it where LIBTORCH names libtorch");
        };
        let root = std::path::Path::new(root);
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("stand_in.cpp");
        std::fs::write(&source, STAND_IN_SOURCE).unwrap();
        let output = Command::new("g++")
            .args(["-shared", "-fPIC", "-std=c++20", "-w", "-o"])
            .arg(dir.path().join("libtorch_cuda.so"))
            .arg(&source)
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-L{}", root.join("lib").display()))
            .args(["-lc10", "-ltorch_cpu"])
            .output()
            .expect("g++ runs (scripts/setup.sh --hdf5 installs it)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        run_child(&OsString::from(STAND_IN), Some(dir.path()));
    }

    #[test]
    fn asking_for_cuda_here_gives_a_gpu_or_a_clear_error() {
        run_child(&OsString::from("as-is"), None);
    }

    #[test]
    fn a_load_error_names_what_the_loader_said() {
        // SAFETY: the file does not exist, so nothing is loaded or run.
        let e = unsafe { libloading::Library::new("libchunkql_no_such_library.so") }.unwrap_err();
        let text = with_cause(&e);
        assert!(text.starts_with("dlopen failed: "), "{text}");
        assert!(text.contains("libchunkql_no_such_library.so"), "{text}");
    }
}
