//! `chunkql dataset info|chunks` and `chunkql generate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use chunkql::chunk::{ChunkIndex, ChunkSpec, gib, write_chunks_npz};
use chunkql::data::{self, DatasetSummary, LineWalk};
use chunkql::env::{self, Level};

/// Most memory the chunk table of `dataset chunks` may take (it is built
/// whole, then written).
const MAX_TABLE_BYTES: u128 = 8 << 30;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Episodes, length statistics, terminal/timeout counts, returns and dims
    /// of a step-data file; with --horizon also the chunk starts it yields.
    Info {
        /// Step data: .npz (D4RL keys), or .h5/.hdf5 (D4RL or Minari layout)
        /// with the hdf5 cargo feature.
        file: PathBuf,
        /// Also index chunks of this many actions and report the starts.
        #[arg(long)]
        horizon: Option<usize>,
        /// Discount gamma in (0, 1] (with --horizon).
        #[arg(long, default_value_t = 0.99, requires = "horizon")]
        gamma: f64,
        /// To: observations per history (with --horizon).
        #[arg(long, default_value_t = 1, requires = "horizon")]
        obs_horizon: usize,
    },
    /// Write every sampleable chunk transition to an .npz, in increasing
    /// start row: observations, next_observations, actions, action_mask,
    /// cumulative_reward, chunk_done, effective_length, discount_factor,
    /// start_index. The table is built in memory (at most 8 GiB).
    Chunks {
        /// Step data: .npz (D4RL keys), or .h5/.hdf5 (D4RL or Minari layout)
        /// with the hdf5 cargo feature.
        file: PathBuf,
        /// H: actions per chunk.
        #[arg(long)]
        horizon: usize,
        /// Discount gamma in (0, 1].
        #[arg(long, default_value_t = 0.99)]
        gamma: f64,
        /// To: observations per history.
        #[arg(long, default_value_t = 1)]
        obs_horizon: usize,
        /// Output .npz file (parent folders are created).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A built-in environment (pendulum, pointmaze-umaze, pointmaze-medium,
    /// pointmaze-large, and their -terminal variants), or `line` (toy data
    /// with no environment: a point walking to a goal on a line).
    pub source: String,
    /// Behaviour policy: expert, medium or random (environments only;
    /// default medium).
    #[arg(long)]
    pub level: Option<Level>,
    /// Episodes to record (1 to 100000).
    #[arg(long, default_value_t = 100)]
    pub episodes: usize,
    /// `line` only: steps per episode before a timeout (default 50; an
    /// environment's episodes end at its own time limit).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed of the environment's starts and the behaviour policy's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .npz file (parent folders are created).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Info {
            file,
            horizon,
            gamma,
            obs_horizon,
        } => {
            let spec = horizon
                .map(|h| ChunkSpec::new(h, gamma, obs_horizon))
                .transpose()?;
            let data = Arc::new(data::load(&file)?);
            let summary = DatasetSummary::of(&data);
            match spec {
                Some(spec) => {
                    let index = ChunkIndex::new(data, spec)?;
                    println!("{summary}\n{}", index.summary());
                }
                None => println!("{summary}"),
            }
            Ok(())
        }
        DatasetCommand::Chunks {
            file,
            horizon,
            gamma,
            obs_horizon,
            out,
        } => {
            let spec = ChunkSpec::new(horizon, gamma, obs_horizon)?;
            check_npz_out(&out)?;
            if same_file(&file, &out) {
                bail!(
                    "--out {} is the step data being read; choose another file",
                    out.display()
                );
            }
            let data = Arc::new(data::load(&file)?);
            let index = ChunkIndex::new(data, spec)?;
            let table_bytes = index.dims().bytes(index.len());
            if table_bytes > MAX_TABLE_BYTES {
                bail!(
                    "{}: its {} chunk transitions (H {horizon}, To {obs_horizon}) would take {} \
                     in memory, more than the {} this command holds at once; lower --horizon \
                     or --obs-horizon, or split the step data into smaller files",
                    file.display(),
                    index.len(),
                    gib(table_bytes),
                    gib(MAX_TABLE_BYTES)
                );
            }
            create_parent(&out)?;
            write_chunks_npz(&out, &index.all())?;
            println!("{}", index.summary());
            println!(
                "wrote {} to {}",
                count(index.len(), "chunk transition", "chunk transitions"),
                out.display()
            );
            Ok(())
        }
    }
}

/// A recipe for the data `generate` writes, checked before anything runs.
enum Source<'a> {
    Line(LineWalk),
    Env(&'a str, Level),
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    crate::train::check_episodes(args.episodes)?;
    let source = match args.source.as_str() {
        "line" => {
            if args.level.is_some() {
                bail!("--level is for environments; `line` has no behaviour levels");
            }
            let max_steps = args.max_steps.unwrap_or(50);
            if max_steps == 0 {
                bail!("--max-steps must be at least 1");
            }
            Source::Line(LineWalk {
                episodes: args.episodes,
                max_steps,
                seed: args.seed,
                ..LineWalk::default()
            })
        }
        name if env::ENV_NAMES.contains(&name) => {
            if args.max_steps.is_some() {
                bail!("--max-steps is for `line`; {name}'s episodes end at its own time limit");
            }
            Source::Env(name, args.level.unwrap_or(Level::Medium))
        }
        name => bail!(
            "unknown data source `{name}` (known: line, {})",
            env::ENV_NAMES.join(", ")
        ),
    };
    check_npz_out(&args.out)?;
    let data = match source {
        Source::Line(walk) => walk.generate(),
        Source::Env(name, level) => env::generate(name, level, args.episodes, args.seed)?,
    };
    create_parent(&args.out)?;
    data::write_npz(&args.out, &data)?;
    let summary = DatasetSummary::of(&data);
    println!(
        "wrote {} in {} to {} (episode return mean {:.2}, std {:.2})",
        count(data.len(), "step", "steps"),
        count(data.episodes().len(), "episode", "episodes"),
        args.out.display(),
        summary.episode_return.mean,
        summary.episode_return.std
    );
    Ok(())
}

/// Refuses an --out that does not end in `.npz`: `dataset info` and `train`
/// choose the reader by extension, so any other name would be unreadable.
fn check_npz_out(out: &Path) -> Result<()> {
    let is_npz = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        bail!(
            "--out {}: the output is an .npz file; its name must end in .npz",
            out.display()
        );
    }
    Ok(())
}

/// Creates the folders above `path` that do not exist yet; a file where
/// one of them should be is named as such.
fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
            bail!(
                "cannot create {}: {} is a file, not a folder",
                dir.display(),
                file.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// `n` with the singular or plural noun: "1 episode", "2 episodes".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether two paths name one existing file (a missing `b` is never `a`).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
