//! Software prefetch for the sampler's random row reads. Sampling touches
//! about ten random cache lines per chunk in arrays far larger than the
//! caches; asking for all of a block's lines before copying any of them keeps
//! many memory reads in flight instead of one at a time.

/// Hints the CPU to load every cache line of `values` (no effect on
/// correctness; a no-op off x86-64).
#[inline(always)]
pub(super) fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = values.as_ptr() as usize;
        let end = start + std::mem::size_of_val(values);
        let mut line = start & !63;
        while line < end {
            // SAFETY: a prefetch is only a hint; it never faults, even for an
            // address outside the allocation (none is passed here anyway).
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8)
            };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}
