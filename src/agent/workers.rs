//! `Workers`: the threads an update's batch slices run on.
//!
//! On a CPU with few cores the update's tensors are small ([256, 256]), and
//! libtorch's intra-op threads spend much of their time waking up and
//! waiting at the end of each of the step's many small kernels. Splitting the
//! batch into one slice per core instead, each slice's forward and backward
//! passes on its own thread with one intra-op thread, keeps every core busy
//! for whole passes (docs/benchmarks.md). The slices' gradients are summed
//! before the optimiser step (`super::step`), so the step is the one on the
//! whole batch.

use std::sync::{Arc, Mutex};

use tch::Device;

use super::error::AgentError;

/// Smallest slice worth its own thread: below this the matrix products are
/// too small to keep a core busy.
pub const MIN_SLICE_ROWS: usize = 64;

/// How many slices an update on `device` with `batch` rows and `threads` CPU
/// threads is split into when none is asked for: one per thread on the CPU,
/// at most one per `MIN_SLICE_ROWS` rows; 1 on a GPU (where one batched
/// kernel is best).
pub fn auto_workers(device: Device, threads: usize, batch: usize) -> usize {
    match device {
        Device::Cpu => threads.min(batch / MIN_SLICE_ROWS).max(1),
        _ => 1,
    }
}

/// One thread per slice; with one slice, the calling thread. Clones share
/// the threads.
#[derive(Clone)]
pub struct Workers {
    count: usize,
    /// libtorch threads per worker (0 when inline: the caller's own).
    intra_op_threads: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.count)
            .finish()
    }
}

impl Workers {
    /// Runs on the calling thread (with libtorch's intra-op threads).
    pub fn inline() -> Self {
        Workers {
            count: 1,
            intra_op_threads: 0,
            pool: None,
        }
    }

    /// Tests only: `count` slices, all run one after another on the calling
    /// thread.
    #[cfg(test)]
    pub(crate) fn serial(count: usize) -> Self {
        Workers {
            count,
            intra_op_threads: 0,
            pool: None,
        }
    }

    /// `count` threads, each with `intra_op_threads` libtorch threads.
    pub fn new(count: usize, intra_op_threads: usize) -> Result<Self, AgentError> {
        if count <= 1 {
            return Ok(Workers::inline());
        }
        let intra = intra_op_threads.max(1) as i32;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(|i| format!("chunkql-update-{i}"))
            .start_handler(move |_| tch::set_num_threads(intra))
            .build()
            .map_err(|e| AgentError::Config(format!("cannot start {count} update threads: {e}")))?;
        Ok(Workers {
            count,
            intra_op_threads: intra as usize,
            pool: Some(Arc::new(pool)),
        })
    }

    /// Slices per update.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether `Workers::new(count, intra_op_threads)` would make these.
    pub fn are(&self, count: usize, intra_op_threads: usize) -> bool {
        match count <= 1 {
            true => self.count == 1 && self.pool.is_none(),
            false => self.count == count && self.intra_op_threads == intra_op_threads.max(1),
        }
    }

    /// Runs `f` on one of the worker threads (on the calling thread when
    /// inline), so that the work between phases also runs with the workers'
    /// intra-op threads and the calling thread's own libtorch threads stay
    /// asleep.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            None => f(),
            Some(pool) => pool.install(f),
        }
    }

    /// `f` on every job, job i on worker thread i (at most `count` jobs);
    /// results in job order.
    ///
    /// Always the same thread for the same slice: autograd orders a backward
    /// pass by the creation order of its graph's nodes, counted per thread,
    /// so a slice whose graph was built on one thread in phase A and another
    /// in phase B could sum its gradient contributions in a different order
    /// from run to run.
    pub fn run<J, R, F>(&self, jobs: Vec<J>, f: F) -> Vec<R>
    where
        J: Send,
        R: Send,
        F: Fn(J) -> R + Sync + Send,
    {
        match &self.pool {
            None => jobs.into_iter().map(f).collect(),
            Some(pool) => {
                assert!(jobs.len() <= self.count, "more jobs than worker threads");
                let slots: Vec<Mutex<Option<J>>> =
                    jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
                pool.broadcast(|ctx| {
                    let job = slots
                        .get(ctx.index())
                        .and_then(|slot| slot.lock().expect("job slot").take());
                    job.map(&f)
                })
                .into_iter()
                .flatten()
                .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_one_per_core_with_enough_rows_and_one_on_a_gpu() {
        assert_eq!(auto_workers(Device::Cpu, 2, 256), 2);
        assert_eq!(auto_workers(Device::Cpu, 16, 256), 4);
        assert_eq!(auto_workers(Device::Cpu, 2, 100), 1);
        assert_eq!(auto_workers(Device::Cpu, 1, 256), 1);
        assert_eq!(auto_workers(Device::Cpu, 0, 256), 1);
        assert_eq!(auto_workers(Device::Cuda(0), 16, 4096), 1);
    }

    #[test]
    fn jobs_run_on_distinct_threads_and_results_keep_their_order() {
        let workers = Workers::new(2, 1).unwrap();
        let barrier = std::sync::Barrier::new(2);
        // Both jobs wait for each other: this finishes only if they run at
        // the same time on two threads.
        let out = workers.run(vec![10, 20], |j| {
            barrier.wait();
            (j, std::thread::current().name().map(String::from))
        });
        let names = ["chunkql-update-0", "chunkql-update-1"].map(|n| Some(n.to_string()));
        assert_eq!(out, vec![(10, names[0].clone()), (20, names[1].clone())]);
        // Job i always runs on thread i; fewer jobs than threads is fine.
        for _ in 0..20 {
            let out = workers.run(vec![1, 2], |j| {
                (j, std::thread::current().name().map(String::from))
            });
            assert_eq!(out, vec![(1, names[0].clone()), (2, names[1].clone())]);
        }
        let one = workers.run(vec![5], |j| {
            (j, std::thread::current().name().map(String::from))
        });
        assert_eq!(one, vec![(5, names[0].clone())]);
        assert_eq!(
            Workers::inline().run(vec![1, 2, 3], |j| j * 2),
            vec![2, 4, 6]
        );
    }

    #[test]
    fn worker_threads_have_the_asked_intra_op_threads() {
        let workers = Workers::new(2, 1).unwrap();
        let seen = workers.run(vec![(), ()], |_| tch::get_num_threads());
        assert_eq!(seen, vec![1, 1]);
        // What set_workers asks before it starts new threads.
        assert!(workers.are(2, 1) && workers.are(2, 0));
        assert!(!workers.are(2, 2) && !workers.are(3, 1) && !workers.are(1, 1));
        assert!(Workers::inline().are(1, 4) && Workers::inline().are(0, 1));
        assert!(!Workers::inline().are(2, 1));
    }
}
