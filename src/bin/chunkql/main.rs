//! The `chunkql` command line. Library errors get context here and are
//! printed as one line; the exit code is non-zero on any error.

mod dataset;
mod train;

use std::process::ExitCode;

use chunkql::train::TrainError;
use clap::{Parser, Subcommand};

/// Offline reinforcement learning with action chunks.
///
/// Step data (npz with D4RL keys; D4RL/Minari HDF5 with the `hdf5` feature)
/// becomes chunk transitions whose critic target is the semi-Markov one:
/// y = sum_{i<tau} gamma^i r_{t+i} + (1 - done) gamma^tau min_j Q'_j(s_{t+tau}, a').
#[derive(Debug, Parser)]
#[command(name = "chunkql", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect step data and the chunk transitions built from it.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Write a dataset recorded from a built-in environment's scripted
    /// behaviour policy (or the `line` toy data) to an .npz file.
    Generate(dataset::GenerateArgs),
    /// Train Diffusion-QL or CPQL on chunk transitions, with periodic
    /// evaluation, checkpoints and learning curves.
    Train(train::TrainArgs),
    /// Evaluate a run folder or a checkpoint in its environment.
    Eval(train::EvalArgs),
    /// Measure the random and expert reference returns of an environment.
    Reference(train::ReferenceArgs),
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the
    // program quietly, as it does any Unix tool, instead of a panic.
    // SAFETY: sets a signal's disposition before any thread is started.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Every update frees and allocates the same tensors again: keep the memory.
    chunkql::device::allocator::keep_freed_memory();
    let result = match cli.command {
        Command::Dataset(command) => dataset::run(command),
        Command::Generate(args) => dataset::generate(args),
        Command::Train(args) => train::train(args),
        Command::Eval(args) => train::eval(args),
        Command::Reference(args) => train::reference(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<TrainError>() {
            // Not a failure: the run did what Ctrl-C asked.
            Some(stopped @ (TrainError::Stopped { .. } | TrainError::StoppedBeforeStart)) => {
                eprintln!("{stopped}");
                ExitCode::from(train::EXIT_STOPPED as u8)
            }
            _ => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
