/* The PyTorch side of chunkql's MKL override (src/device/mkl.rs), for the
 * side-by-side benchmark only: preloaded into Python (LD_PRELOAD), it answers
 * MKL's "is this an Intel CPU?" with yes, so that MKL picks its kernels by
 * the CPU's instruction sets, as chunkql's binaries do.
 * bench/side_by_side.sh builds it: gcc -O2 -shared -fPIC. */
int mkl_serv_intel_cpu_true(void) { return 1; }
