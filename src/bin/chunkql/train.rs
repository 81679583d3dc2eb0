//! `chunkql train`, `chunkql eval` and `chunkql reference`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use chunkql::agent::{AgentError, Algorithm, AnyAgent, read_checkpoint_info};
use chunkql::eval::{EvalConfig, evaluate, evaluate_recorded, measure_reference, plot_rollouts};
use chunkql::train::{
    self, CHECKPOINT_FILE, CONFIG_FILE, CURVES_FILE, LoopState, NO_ENV, ROLLOUTS_FILE, StopHandle,
    TrainConfig, TrainError, parse_device,
};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML config (every field has a default; see `docs/training.md`).
    /// The options below override its values; without one, the defaults
    /// are the built-in config's, shown as [config default: ...].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Environment to evaluate in (and to generate the default data from);
    /// `none`: train on --dataset, of any widths, without evaluation
    /// [config default: pendulum].
    #[arg(long)]
    pub env: Option<String>,
    /// Step data (.npz, or .h5/.hdf5 with the hdf5 feature); default
    /// data/<env>-<level>.npz (data/<env>-<level>-<N>ep.npz for another
    /// dataset_episodes than 100), generated if missing.
    #[arg(long)]
    pub dataset: Option<String>,
    /// dql (Diffusion-QL) or cpql [config default: dql].
    #[arg(long)]
    pub agent: Option<String>,
    /// H: actions per chunk [config default: 4].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Seed of the run: initial weights, batches, noise, evaluation episodes
    /// (generated default data always uses seed 0) [config default: 0].
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=train::MAX_SEED))]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N [config default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// Gradient updates [config default: 5000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override any config field: `--set agent.eta=2.5 --set batch_size=128`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run folder (default runs/<env>-<agent>-h<H>-s<seed>, numbered if taken;
    /// with env none the dataset's file name stands for <env>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the resolved config (defaults, --config, flags and --set) as
    /// TOML and exit: a starting point for a config file.
    #[arg(long, conflicts_with_all = ["resume", "out"])]
    pub print_config: bool,
    /// Continue the killed or finished run in this folder from its last
    /// checkpoint (its saved config is used; other options are not allowed).
    #[arg(long, conflicts_with_all = ["config", "env", "dataset", "agent", "horizon", "seed", "device", "steps", "overrides", "out"])]
    pub resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run folder or a checkpoint file.
    pub run: PathBuf,
    /// Episodes to run (default: the run's eval_episodes, else 10).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Steps of each chunk executed before re-planning, 1 to H; 0 means H
    /// (default: the run's `execute`, where 0 also means H).
    #[arg(long)]
    pub execute: Option<usize>,
    /// Seed of the episodes' starts and the policy's sampling noise (default:
    /// the run's own evaluation seed, so that with the run's episode count
    /// this repeats the run's last evaluation). The episodes share one noise
    /// stream: an episode's outcome depends on --episodes too. Episode k
    /// starts where episode k of `generate --seed` with the same seed does
    /// (--seed 0: the default data's starts).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Environment (default: the one the run trained for).
    #[arg(long)]
    pub env: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the result as one JSON object (checkpoint, step, seed as a
    /// string, and the report: every episode, the intervals, execute)
    /// instead of a line.
    #[arg(long)]
    pub json: bool,
    /// Also draw the episodes to this PNG file: a maze from above with each
    /// episode's path, the pendulum's angle and torque over time; a ring
    /// marks each step at which a new chunk was asked for.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Temporal ensembling (ACT): ask for a chunk at every step and execute
    /// the weighted mean of what the last H chunks propose for it, weights
    /// exp(-M i) from the oldest (i = 0); ACT uses 0.01, 0 is the plain
    /// mean. Replaces --execute (the run's own is not used). Default: the
    /// run's `ensemble`, unless --execute is given.
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub ensemble: Option<f64>,
}

#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// Environment whose random and expert behaviour policies to measure.
    pub env: String,
    /// Episodes per behaviour policy.
    #[arg(long, default_value_t = 100)]
    pub episodes: usize,
    /// Seed of the episodes' starts and the policies' noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn config_of(args: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(env) = &args.env {
        cfg.env = env.clone();
    }
    if let Some(dataset) = &args.dataset {
        if dataset.is_empty() {
            // (An unset shell variable, say: not the default data.)
            bail!("--dataset is empty: name a file, or leave the option out for the default data");
        }
        cfg.dataset = dataset.clone();
    }
    if let Some(agent) = &args.agent {
        cfg.algorithm = match agent.as_str() {
            "dql" => Algorithm::Dql,
            "cpql" => Algorithm::Cpql,
            other => bail!("unknown agent `{other}` (known: dql, cpql)"),
        };
    }
    if let Some(h) = args.horizon {
        cfg.horizon = h;
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(device) = &args.device {
        cfg.device = device.clone();
    }
    if let Some(steps) = args.steps {
        cfg.steps = steps;
    }
    let cfg = cfg.with_overrides(&args.overrides)?;
    cfg.validate()?;
    Ok(cfg)
}

/// Claims runs/<env>-<agent>-h<H>-s<seed> (without an environment, the
/// dataset's file stem for <env>), or the first numbered variant not taken,
/// by creating it: of runs started at once, each gets its own folder.
fn claim_default_run_dir(cfg: &TrainConfig) -> Result<PathBuf> {
    let name = if cfg.evaluates() {
        cfg.env.clone()
    } else {
        let path = cfg.dataset_path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        stem.unwrap_or_else(|| NO_ENV.to_string())
    };
    let base = format!(
        "runs/{name}-{}-h{}-s{}",
        cfg.algorithm, cfg.horizon, cfg.seed
    );
    std::fs::create_dir_all("runs").context("cannot create the folder runs")?;
    let mut dir = PathBuf::from(&base);
    for k in 2.. {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = PathBuf::from(format!("{base}-{k}"));
            }
            Err(e) => bail!("cannot create {}: {e}", dir.display()),
        }
    }
    Ok(dir)
}

pub fn train(args: TrainArgs) -> Result<()> {
    let stop = StopHandle::new();
    // Installed before anything else: a signal that comes while the run is
    // being set up meets the handler, not the default action.
    let claimed = Arc::new(OnceLock::new());
    stop_on_ctrl_c(&stop, Arc::clone(&claimed))?;
    let summary = match &args.resume {
        Some(dir) => train::resume(dir, &stop)?,
        None => {
            let cfg = config_of(&args)?;
            if args.print_config {
                // Absolute, as a run saves it: a relative path in a config
                // file is read from the file's folder, not from here.
                print!("{}", cfg.with_absolute_dataset()?.to_toml());
                return Ok(());
            }
            let dir = match &args.out {
                Some(out) => out.clone(),
                None => {
                    let dir = claim_default_run_dir(&cfg)?;
                    claimed.set(dir.clone()).expect("one folder claimed");
                    dir
                }
            };
            let result = train::train(cfg, &dir, &stop);
            if args.out.is_none()
                && result
                    .as_ref()
                    .is_err_and(|e| !matches!(e, TrainError::Busy(_)))
            {
                // The claimed folder, if the run failed before writing to
                // it (not one another process locked: it is that one's).
                let _ = std::fs::remove_dir(&dir);
            }
            result?
        }
    };
    let rate = match summary.first_step {
        first if first == summary.steps => "already complete".to_string(),
        0 => format!("{:.1} steps/s", summary.steps_per_second),
        first => format!(
            "resumed at {first}, {:.1} steps/s",
            summary.steps_per_second
        ),
    };
    let evaluation = match &summary.final_eval {
        Some(report) => report.to_string(),
        None => format!(
            "not evaluated (env = {NO_ENV}); evaluate in an environment of the data's widths with \
             `chunkql eval {} --env NAME`",
            summary.run_dir.display()
        ),
    };
    let dir = summary.run_dir.display();
    let pictures = match summary.final_eval {
        Some(_) => format!(
            "{dir}/{CURVES_FILE} (learning curves), {dir}/{ROLLOUTS_FILE} (the final evaluation's \
             episodes)"
        ),
        None => format!("{dir}/{CURVES_FILE} (learning curves)"),
    };
    println!(
        "run {dir}: {} steps, {rate}\n{evaluation}\npictures: {pictures}",
        summary.steps,
    );
    Ok(())
}

/// The first Ctrl-C (SIGINT or SIGTERM) stops the run after its current
/// update with a checkpoint; a second one quits at once. A repeat within
/// [`SAME_REQUEST`] of the first is the same request delivered twice (GNU
/// `timeout` signals the process and then its whole group), not a second
/// Ctrl-C. `claimed`: the default run folder this process created, once it
/// has (set after the handler is installed), removed on quitting at once if
/// nothing was written to it yet.
fn stop_on_ctrl_c(stop: &StopHandle, claimed: Arc<OnceLock<PathBuf>>) -> Result<()> {
    let stop = stop.clone();
    let mut first: Option<Instant> = None;
    ctrlc::set_handler(move || {
        match first {
            Some(at) if at.elapsed() < SAME_REQUEST => {}
            Some(_) => {
                eprintln!(
                    "quitting at once, without a checkpoint: --resume continues from the \
                     last one written"
                );
                if let Some(dir) = claimed.get() {
                    // Still empty if set-up had not begun writing to it: a
                    // run folder nothing can resume.
                    let _ = std::fs::remove_dir(dir);
                }
                // At once, from this thread: `_exit` skips the exit handlers
                // that would tear libtorch down under the main thread still
                // using it.
                // SAFETY: ends the process; nothing runs after it.
                unsafe { libc::_exit(EXIT_STOPPED) };
            }
            None => {
                first = Some(Instant::now());
                stop.stop();
                eprintln!(
                    "\nstopping once the work in progress ends, with a checkpoint if training \
                     has begun (a second Ctrl-C or SIGTERM, a second or more later, quits at \
                     once)"
                );
            }
        }
    })
    .context("cannot install the Ctrl-C handler")
}

/// How soon after a first stop signal a repeat counts as the same request.
const SAME_REQUEST: Duration = Duration::from_secs(1);

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_STOPPED: i32 = 130;

pub fn eval(args: EvalArgs) -> Result<()> {
    if let Some(path) = &args.plot {
        check_picture_path(path)?;
    }
    let (checkpoint, run_cfg) = if args.run.is_dir() {
        let config = args.run.join(CONFIG_FILE);
        let cfg = match config.exists() {
            true => Some(TrainConfig::from_file(&config)?),
            false => None,
        };
        let checkpoint = args.run.join(CHECKPOINT_FILE);
        if !checkpoint.exists() {
            bail!(
                "{} has no {CHECKPOINT_FILE}: {}",
                args.run.display(),
                match cfg.is_some() {
                    true => "the run has not written its first checkpoint yet",
                    false => "it is not a run folder (it has no config.toml either)",
                }
            );
        }
        (checkpoint, cfg)
    } else {
        (args.run.clone(), None)
    };
    let info = read_checkpoint_info(&checkpoint).map_err(|e| {
        let is_checkpoint = checkpoint.extension().is_some_and(|x| x == "safetensors");
        match (e, is_checkpoint) {
            (e @ AgentError::Checkpoint { .. }, false) => {
                anyhow::anyhow!("{e} (eval takes a run folder or its {CHECKPOINT_FILE})")
            }
            (e, _) => e.into(),
        }
    })?;
    // A checkpoint saved by the library has no loop state (null); one whose
    // state is unreadable is evaluated, but not silently.
    let state: Option<LoopState> = match info.extra {
        serde_json::Value::Null => None,
        extra => serde_json::from_value(extra)
            .inspect_err(|e| {
                eprintln!(
                    "note: {}: its training-loop state is unreadable ({e}): the run's own \
                     evaluation settings (environment, execute) are not known from it",
                    checkpoint.display()
                )
            })
            .ok(),
    };
    let env = args
        .env
        .clone()
        .or_else(|| run_cfg.as_ref().map(|c| c.env.clone()))
        .or_else(|| state.as_ref().map(|s| s.env.clone()))
        .context("this checkpoint does not record its environment; pass --env")?;
    if env == NO_ENV && args.env.is_some() {
        bail!("--env {NO_ENV}: there is no environment to evaluate in; name one");
    }
    if env == NO_ENV {
        bail!(
            "{} was trained without an environment (env = {NO_ENV}); pass --env NAME, an \
             environment with the data's observation and action widths",
            args.run.display()
        );
    }
    // The run's config: its folder's, or the one saved in the checkpoint.
    let run_cfg = run_cfg
        .as_ref()
        .or_else(|| state.as_ref().and_then(|s| s.config.as_ref()));
    // Without a config (a checkpoint of an older version or of the
    // library), the seed the agent was made with: a run's own seed.
    let run_seed = run_cfg.map_or(info.seed, |c| c.seed);
    let seed = args.seed.unwrap_or_else(|| train::eval_seed(run_seed));
    if let (Some(m), Some(e)) = (args.ensemble, args.execute.filter(|&e| e > 1)) {
        bail!(
            "--ensemble {m} asks for a chunk at every step: --execute must be 1, 0 or left out, \
             got {e}"
        );
    }
    // The run's own ensembling, unless this command says how to execute.
    let ensemble = match args.execute {
        Some(_) => args.ensemble,
        None => args.ensemble.or_else(|| run_cfg.and_then(|c| c.ensemble)),
    };
    // Every setting from one place: the run's config (its folder's, else
    // the checkpoint's), where the loop state's copy of `execute` is only
    // the fallback of checkpoints saved before configs were.
    let execute = match ensemble {
        Some(_) => None,
        None => args
            .execute
            .or_else(|| run_cfg.map(|c| c.execute))
            .or_else(|| state.as_ref().map(|s| s.execute))
            .filter(|&e| e > 0),
    };
    let agent = AnyAgent::load(&checkpoint, parse_device(&args.device)?)?;
    let horizon = agent.dims().horizon;
    if let Some(e) = args.execute.filter(|&e| e > horizon) {
        bail!("--execute {e}: at most the run's chunk length H = {horizon} (0 means H)");
    }
    let episodes = match (args.episodes, run_cfg) {
        (Some(n), _) => n,
        (None, Some(c)) if !(1..=train::MAX_EPISODES).contains(&c.eval_episodes) => bail!(
            "the run's config says eval_episodes = {}, outside 1..={}: pass --episodes",
            c.eval_episodes,
            train::MAX_EPISODES
        ),
        (None, c) => c.map_or(10, |c| c.eval_episodes),
    };
    check_episodes(episodes)?;
    let cfg = EvalConfig {
        episodes,
        execute,
        seed,
        ensemble,
    };
    let report = match &args.plot {
        None => evaluate(&agent, &env, cfg)?,
        Some(path) => {
            let (report, recording) = evaluate_recorded(&agent, &env, cfg)?;
            plot_rollouts(&recording, path).map_err(|e| anyhow::anyhow!(e))?;
            report
        }
    };
    if args.json {
        let out = serde_json::json!({
            "checkpoint": checkpoint.display().to_string(),
            "step": agent.step(),
            // A string: the run's evaluation seeds exceed 2^53, which JSON
            // numbers keep only in some tools (jq and JavaScript round them).
            "seed": seed.to_string(),
            "report": report,
        });
        println!("{out}");
    } else {
        println!("{} (step {}): {report}", checkpoint.display(), agent.step());
    }
    Ok(())
}

pub fn reference(args: ReferenceArgs) -> Result<()> {
    check_episodes(args.episodes)?;
    let refs = measure_reference(&args.env, args.episodes, args.seed)?;
    println!(
        "{}: random {:.3}, expert {:.3} (mean return over {} episode{}, seed {})",
        args.env,
        refs.random,
        refs.expert,
        args.episodes,
        if args.episodes == 1 { "" } else { "s" },
        args.seed
    );
    Ok(())
}

/// `--plot`: a `.png` file in a folder that exists (checked before the
/// evaluation, not after it).
fn check_picture_path(path: &std::path::Path) -> Result<()> {
    if path
        .extension()
        .is_none_or(|x| !x.eq_ignore_ascii_case("png"))
    {
        bail!(
            "--plot {}: the picture is a PNG file, name it *.png",
            path.display()
        );
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !folder.is_dir() {
        bail!(
            "--plot {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
    }
    if path.is_dir() {
        bail!(
            "--plot {}: that is a folder; name the picture file, e.g. {}",
            path.display(),
            path.join("episodes.png").display()
        );
    }
    Ok(())
}

/// `--episodes` of generate, eval and reference: 1 to
/// [`train::MAX_EPISODES`].
pub fn check_episodes(episodes: usize) -> Result<()> {
    if !(1..=train::MAX_EPISODES).contains(&episodes) {
        bail!(
            "--episodes must lie in 1..={}, got {episodes}",
            train::MAX_EPISODES
        );
    }
    Ok(())
}
