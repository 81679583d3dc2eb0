//! Which matrix-product kernels Intel MKL runs on a CPU that is not Intel's.
//!
//! libtorch's CPU matrix products (every Linear layer: addmm, baddbmm, their
//! backward) are MKL's sgemm. MKL picks its kernels by CPU *vendor*: it asks
//! `mkl_serv_intel_cpu_true()`, which compares the cpuid vendor string with
//! "GenuineIntel", and anywhere else runs a generic AVX2 code path, even on
//! a CPU with AVX-512 such as AMD's Zen 4 and Zen 5. On the project's Zen 5
//! VM that path does about 90 GFLOP/s per core on the update's shapes and
//! MKL's own AVX-512 path about 200 (docs/benchmarks.md).
//!
//! This module defines `mkl_serv_intel_cpu_true`, and build.rs exports it
//! from every binary, test and bench of the crate. The dynamic linker looks
//! a symbol up in the executable before any library, so libtorch's call
//! binds to this definition, which answers "yes": MKL then picks its kernels
//! by the instruction sets cpuid reports, as it does on an Intel CPU (on a
//! CPU without AVX-512 that should be MKL's AVX2 kernels; only a Zen 5 was
//! at hand to check). The results are float32
//! matrix products as before; only the order of the additions inside them
//! changes. `CHUNKQL_MKL_VENDOR_CHECK=1` in the environment gives MKL its own
//! answer back. A program that links chunkql as a library gets the override
//! only if it exports the symbol too
//! (`-C link-arg=-Wl,--export-dynamic-symbol=mkl_serv_intel_cpu_true`).

use std::ffi::c_int;
use std::sync::OnceLock;

/// Environment variable that keeps MKL's vendor check ("1").
pub const KEEP_VENDOR_CHECK: &str = "CHUNKQL_MKL_VENDOR_CHECK";

/// What MKL was told and how it was decided, on its first question (MKL
/// may ask again; cpuid is not cheap in a VM).
static DECISION: OnceLock<(MklDispatch, c_int)> = OnceLock::new();

/// MKL's question "is this an Intel CPU?" (see the module doc): 1, unless
/// `CHUNKQL_MKL_VENDOR_CHECK=1`, then the CPU's own vendor decides.
#[unsafe(no_mangle)]
pub extern "C" fn mkl_serv_intel_cpu_true() -> c_int {
    DECISION
        .get_or_init(|| {
            if std::env::var_os(KEEP_VENDOR_CHECK).is_some_and(|v| v == "1") {
                (MklDispatch::ByVendor, c_int::from(genuine_intel()))
            } else {
                (MklDispatch::ByInstructionSet, 1)
            }
        })
        .1
}

/// How MKL chose its kernels in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MklDispatch {
    /// By the CPU's instruction sets (MKL asked this crate, which said yes).
    ByInstructionSet,
    /// By vendor, as MKL does on its own (`CHUNKQL_MKL_VENDOR_CHECK=1`).
    ByVendor,
    /// MKL has not asked this crate: no matrix product has run yet, libtorch
    /// has no MKL, or the executable does not export the override.
    NotAsked,
}

/// What MKL was told so far; meaningful after the first matrix product.
pub fn mkl_dispatch() -> MklDispatch {
    DECISION
        .get()
        .map_or(MklDispatch::NotAsked, |&(dispatch, _)| dispatch)
}

impl std::fmt::Display for MklDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MklDispatch::ByInstructionSet => "MKL kernels chosen by instruction set",
            MklDispatch::ByVendor => {
                "MKL kernels chosen by CPU vendor (CHUNKQL_MKL_VENDOR_CHECK=1)"
            }
            MklDispatch::NotAsked => "MKL kernel choice not overridden",
        })
    }
}

/// cpuid leaf 0's vendor string is "GenuineIntel" (false off x86-64).
fn genuine_intel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: cpuid leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &vendor == b"GenuineIntel"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// A float32 matrix product next to the same sums in f64 on the host.
    #[test]
    fn matrix_products_are_right_and_mkl_asked_this_crate() {
        let (m, k, n) = (96usize, 200usize, 72usize);
        let value =
            |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f32 / 500.0) - 1.0;
        let a: Vec<f32> = (0..m * k).map(|i| value(i, 1)).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
        let c = Tensor::from_slice(&a)
            .view([m as i64, k as i64])
            .matmul(&Tensor::from_slice(&b).view([k as i64, n as i64]));
        assert_eq!(c.kind(), Kind::Float);
        assert_eq!(c.device(), Device::Cpu);
        let c: Vec<f32> = Vec::try_from(c.view([-1])).unwrap();
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|l| f64::from(a[i * k + l]) * f64::from(b[l * n + j]))
                    .sum();
                let got = f64::from(c[i * n + j]);
                assert!(
                    (got - exact).abs() < 1e-4,
                    "c[{i}, {j}] = {got}, exact {exact}"
                );
            }
        }
        if tch::utils::has_mkl() {
            assert_ne!(
                mkl_dispatch(),
                MklDispatch::NotAsked,
                "libtorch has MKL, but MKL did not call this crate's mkl_serv_intel_cpu_true: \
                 is it exported from the test binary (build.rs)?"
            );
        }
    }

    #[test]
    fn the_vendor_string_is_read_from_cpuid() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let Some(line) = cpuinfo.lines().find(|l| l.starts_with("vendor_id")) else {
            return; // not Linux on x86-64: nothing to compare with
        };
        assert_eq!(
            genuine_intel(),
            line.trim_end().ends_with("GenuineIntel"),
            "{line}"
        );
    }
}
