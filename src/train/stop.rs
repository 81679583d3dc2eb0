//! `StopHandle`: how a caller (the binary's Ctrl-C handler) asks a running
//! training loop to stop cleanly. After the update in progress the loop
//! writes a checkpoint and returns [`super::TrainError::Stopped`];
//! `--resume` then continues exactly where it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag shared between the training loop and whoever may stop it.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A handle that has not been asked to stop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the loop to stop after its current update (callable from any
    /// thread, e.g. a signal handler's).
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
