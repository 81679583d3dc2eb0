//! glibc's allocator, told to keep freed memory for the next update.
//!
//! Every update allocates and frees the same tensors again (activations,
//! gradients, MKL's packing buffers). By default glibc hands the free top of
//! a heap back to the kernel (`brk` down, `madvise(MADV_DONTNEED)` in the
//! worker threads' arenas) as soon as it passes 128 KiB, and the next update
//! faults those pages in again, zeroed: about 150 page faults per update of
//! configuration (a) (docs/benchmarks.md). [`keep_freed_memory`] raises the
//! trim threshold so that freed memory stays in the heap; the price is that
//! the process's resident size stays at its peak.

/// Keeps up to 256 MiB of freed memory per heap for reuse instead of
/// returning it to the kernel, with 16 MiB of extra room on each heap
/// growth, and serves blocks up to 32 MiB (glibc's largest threshold) from
/// the heap rather than from their own `mmap`.
///
/// Process-wide: chunkql's binaries call it once at start. Returns false
/// when glibc refused a setting, and on other C libraries, where it does
/// nothing.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MIB: libc::c_int = 1 << 20;
        // SAFETY: mallopt only sets the allocator's parameters; these are
        // documented values within glibc's limits.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * MIB) == 1
                && libc::mallopt(libc::M_TOP_PAD, 16 * MIB) == 1
                && libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * MIB) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_settings() {
        assert!(keep_freed_memory());
        // Allocation still works with them, for a block that glibc would
        // have given its own mmap before.
        let v = vec![1u8; 8 << 20];
        assert_eq!(v.iter().map(|&b| u64::from(b)).sum::<u64>(), 8 << 20);
    }
}
