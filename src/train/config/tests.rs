use super::*;

#[test]
fn defaults_round_trip_through_toml() {
    let cfg = TrainConfig::default();
    assert_eq!(TrainConfig::from_toml(&cfg.to_toml()).unwrap(), cfg);
    assert_eq!(TrainConfig::from_toml("").unwrap(), cfg);
    // An unset option is left out of the file (TOML has no null); a set
    // one is written and read back.
    assert!(!cfg.to_toml().contains("ensemble"));
    let ensembled = TrainConfig {
        ensemble: Some(0.01),
        ..cfg
    };
    assert!(ensembled.to_toml().contains("\nensemble = 0.01\n"));
    assert_eq!(
        TrainConfig::from_toml(&ensembled.to_toml()).unwrap(),
        ensembled
    );
}

#[test]
fn a_run_without_an_environment_needs_a_dataset() {
    let none = |dataset: &str| TrainConfig {
        env: NO_ENV.into(),
        dataset: dataset.into(),
        ..TrainConfig::default()
    };
    assert!(!none("").evaluates() && TrainConfig::default().evaluates());
    let err = none("").validate().unwrap_err().to_string();
    assert!(
        err.contains("env = none trains on a given dataset"),
        "{err}"
    );
    none("hopper-medium-v2.hdf5").validate().unwrap();
    let mars = TrainConfig {
        env: "mars".into(),
        ..TrainConfig::default()
    };
    let err = mars.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("invalid config: unknown environment `mars`")
            && err.ends_with("; or none, to train on a given dataset without evaluation"),
        "{err}"
    );
}

#[test]
fn overrides_set_nested_values_and_parse_types() {
    let cfg = TrainConfig::default()
        .with_overrides(&[
            "agent.eta=2.5".into(),
            "horizon=8".into(),
            "algorithm=cpql".into(),
            "agent.critic.hidden=[64, 64]".into(),
            "agent.target=one_step".into(),
        ])
        .unwrap();
    assert_eq!(cfg.agent.eta, 2.5);
    assert_eq!(cfg.horizon, 8);
    assert_eq!(cfg.algorithm, Algorithm::Cpql);
    assert_eq!(cfg.agent.critic.hidden, vec![64, 64]);
    assert_eq!(cfg.agent.target, crate::agent::TargetKind::OneStep);
}

#[test]
fn a_policy_section_the_agent_does_not_read_is_named() {
    let with = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let cfg = TrainConfig::default().with_overrides(&sets).unwrap();
        cfg.agent.ignored_section(cfg.algorithm)
    };
    assert_eq!(with(&[]), None);
    assert_eq!(with(&["algorithm=cpql"]), None);
    assert_eq!(
        with(&["algorithm=cpql", "agent.diffusion.net.net=unet"]),
        Some("diffusion")
    );
    assert_eq!(
        with(&["algorithm=cpql", "agent.consistency.net.net=unet"]),
        None
    );
    assert_eq!(with(&["agent.diffusion.steps=10"]), None);
    assert_eq!(
        with(&["agent.consistency.loss=consistency"]),
        Some("consistency")
    );
    // One config for both agents sets both sections: no note.
    let both = [
        "agent.diffusion.net.hidden=[32]",
        "agent.consistency.net.hidden=[32]",
    ];
    assert_eq!(with(&both), None);
    assert_eq!(with(&[&["algorithm=cpql"], &both[..]].concat()), None);
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let err = TrainConfig::default()
        .with_overrides(&["agent.etta=1".into()])
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("--set agent.etta=1: unknown key `agent.etta` (keys here: ")
            && message.contains(", eta, "),
        "{message}"
    );
    let err = TrainConfig::default()
        .with_overrides(&["agent=1".into()])
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--set agent=1: `agent` is a section: set one of its keys"),
        "{err}"
    );
    let set_error = |assignment: &str| {
        TrainConfig::default()
            .with_overrides(&[assignment.into()])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        set_error("seed=9223372036854775808"),
        "--set seed=9223372036854775808: invalid type: string \"9223372036854775808\", \
         expected a whole number >= 0 (`9223372036854775808` is beyond TOML's integers, \
         -9223372036854775808..=9223372036854775807)"
    );
    assert_eq!(
        set_error("gamma=0.99x"),
        "--set gamma=0.99x: invalid type: string \"0.99x\", expected a number (`0.99x` is \
         not a number TOML can read)"
    );
    let unclosed = set_error("agent.critic.hidden=[128,");
    assert!(
        unclosed.starts_with(
            "--set agent.critic.hidden=[128,: invalid type: string \"[128,\", expected a list \
             such as [256, 256] (`[128,` is not a TOML value: "
        ),
        "{unclosed}"
    );
    assert_eq!(
        set_error("steps=0100"),
        "--set steps=0100: invalid type: string \"0100\", expected a whole number >= 0 \
         (`0100` is not a number TOML can read)"
    );
    assert_eq!(
        set_error("agent.act_with_ema=yes"),
        "--set agent.act_with_ema=yes: invalid type: string \"yes\", expected true or false"
    );
    let err = TrainConfig::default()
        .with_overrides(&["horizon=many".into()])
        .unwrap_err();
    assert!(err.to_string().starts_with("--set horizon=many: "), "{err}");
    let err = TrainConfig::default()
        .with_overrides(&["algorithm=sac".into()])
        .unwrap_err();
    assert!(err.to_string().contains("unknown variant `sac`"), "{err}");
    let err = TrainConfig::from_toml("stepz = 3").unwrap_err();
    assert!(err.contains("unknown field `stepz`"), "{err}");
    let err = TrainConfig::default()
        .with_overrides(&["noequals".into()])
        .unwrap_err();
    assert_eq!(err.to_string(), "--set noequals: expected key=value");
}

#[test]
fn validation_catches_bad_numbers() {
    let bad = |f: &dyn Fn(&mut TrainConfig)| {
        let mut c = TrainConfig::default();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert_eq!(
        bad(&|c| c.horizon = 0),
        "invalid config: horizon: chunk horizon H must be at least 1, got 0"
    );
    assert_eq!(
        bad(&|c| c.gamma = 1.5),
        "invalid config: gamma: discount gamma must lie in (0, 1], got 1.5"
    );
    assert_eq!(
        bad(&|c| c.obs_horizon = 5000),
        "invalid config: obs_horizon: observation horizon To must be at most 4096, got 5000"
    );
    assert_eq!(
        bad(&|c| c.agent.tau = 0.0),
        "invalid config: agent.tau: must lie in (0, 1], got 0"
    );
    assert!(bad(&|c| c.execute = 9).contains("execute"));
    assert_eq!(
        bad(&|c| c.ensemble = Some(f64::NAN)),
        "invalid config: ensemble must be a finite number, got NaN"
    );
    assert_eq!(
        bad(&|c| {
            c.ensemble = Some(0.01);
            c.execute = 2;
        }),
        "invalid config: ensemble asks for a chunk at every step: execute must be 0 or 1 with it, \
         got 2"
    );
    assert_eq!(
        bad(&|c| c.checkpoint_every = 0),
        "invalid config: checkpoint_every must be at least 1"
    );
    assert_eq!(
        bad(&|c| c.threads = 100_000),
        "invalid config: threads must lie in 0..=1024 (0: all cores), got 100000"
    );
    assert_eq!(
        bad(&|c| c.batch_size = 100_000_000),
        "invalid config: batch_size must lie in 1..=65536, got 100000000"
    );
    assert_eq!(
        bad(&|c| c.dataset_episodes = 1_000_000),
        "invalid config: dataset_episodes must lie in 1..=100000, got 1000000"
    );
    assert!(bad(&|c| c.seed = u64::MAX).starts_with("invalid config: seed must be at most"));
    assert_eq!(
        bad(&|c| c.device = "gpu".into()),
        "invalid config: device: unknown device `gpu` (use cpu, cuda or cuda:N)"
    );
    for device in ["cpu", "cuda", "cuda:1"] {
        let cfg = TrainConfig {
            device: device.into(),
            ..TrainConfig::default()
        };
        assert!(cfg.validate().is_ok(), "{device}");
    }
    assert!(TrainConfig::default().validate().is_ok());
}

#[test]
fn updates_at_learning_rate_zero_are_refused() {
    let cfg = |steps: u64, decay: u64, lr_min: f64| {
        let mut c = TrainConfig {
            steps,
            ..TrainConfig::default()
        };
        c.agent.lr_decay_steps = decay;
        c.agent.lr_min = lr_min;
        c
    };
    // 0 decays over `steps`; a decay that covers them, or lr_min > 0, is fine.
    assert!(cfg(100, 0, 0.0).idle_updates().is_none());
    assert!(cfg(100, 100, 0.0).idle_updates().is_none());
    assert!(cfg(100, 200, 0.0).idle_updates().is_none());
    assert!(cfg(100, 50, 1e-5).idle_updates().is_none());
    let err = cfg(100, 50, 0.0).validate().unwrap_err().to_string();
    assert!(
        err.starts_with(
            "invalid config: steps = 100 runs past agent.lr_decay_steps = 50 with \
             agent.lr_min = 0: the learning rates are 0 after the first 50 updates"
        ),
        "{err}"
    );
}

#[test]
fn generated_data_of_another_size_has_its_own_file() {
    let cfg = |episodes: usize| TrainConfig {
        dataset_episodes: episodes,
        ..TrainConfig::default()
    };
    assert_eq!(
        cfg(100).dataset_path(),
        Path::new("data/pendulum-medium.npz")
    );
    assert_eq!(
        cfg(5).dataset_path(),
        Path::new("data/pendulum-medium-5ep.npz")
    );
    let given = TrainConfig {
        dataset: "my.npz".into(),
        ..cfg(5)
    };
    assert_eq!(given.dataset_path(), Path::new("my.npz"));
}

#[test]
fn toml_errors_name_the_line_the_column_and_the_key() {
    let err = TrainConfig::from_toml("env = \"pendulum\"\nsteps = \"five\"\n").unwrap_err();
    assert_eq!(
        err,
        "line 2, column 9, key `steps`: invalid type: string \"five\", expected a whole number >= 0"
    );
    let err = TrainConfig::from_toml("steps = 1\nseed = 2\nsteps = 3\n").unwrap_err();
    assert_eq!(err, "line 3, column 1, key `steps`: duplicate key");
    let err = TrainConfig::from_toml("steps = 1\n\n[agent]\neta = \"x\"\n").unwrap_err();
    assert_eq!(
        err,
        "line 4, column 7, key `agent.eta`: invalid type: string \"x\", expected a number"
    );
    let err = TrainConfig::from_toml("[agent]\neta = 1\n[agent]\n").unwrap_err();
    assert_eq!(err, "line 3, column 2, key `agent`: duplicate key");
    let err = TrainConfig::from_toml("[agent.critic]\nhiden = [1]\n").unwrap_err();
    assert!(
        err.starts_with("line 2, column 1, key `agent.critic.hiden`: unknown field `hiden`"),
        "{err}"
    );
    // Inside a multi-line array the line names no key.
    let err =
        TrainConfig::from_toml("[agent.critic]\nhidden = [\n  1,\n  \"a\",\n]\n").unwrap_err();
    assert_eq!(
        err,
        "line 4, column 3: invalid type: string \"a\", expected a whole number"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, "# a run\nsteps = \"five\"\n").unwrap();
    let err = TrainConfig::from_file(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: line 2, column 9, key `steps`: invalid type: string \"five\", expected a whole \
             number >= 0",
            path.display()
        )
    );
}

#[test]
fn a_relative_dataset_in_a_config_file_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir(&configs).unwrap();
    let read = |dataset: &str| {
        let path = configs.join("run.toml");
        std::fs::write(&path, format!("dataset = {dataset:?}\n")).unwrap();
        TrainConfig::from_file(&path).unwrap().dataset
    };
    let beside = configs.join("../data/walk.npz").display().to_string();
    assert_eq!(read("../data/walk.npz"), beside);
    assert_eq!(
        read("walk.npz"),
        configs.join("walk.npz").display().to_string()
    );
    // Absolute paths and the empty default (generated data) stay as written.
    let absolute = dir.path().join("walk.npz").display().to_string();
    assert_eq!(read(&absolute), absolute);
    assert_eq!(read(""), "");
}

#[test]
fn more_workers_than_batch_rows_are_rejected() {
    let with = |workers: usize, batch_size: usize| {
        TrainConfig {
            workers,
            batch_size,
            ..TrainConfig::default()
        }
        .validate()
    };
    assert_eq!(
        with(8, 4).unwrap_err().to_string(),
        "invalid config: workers (8) must not exceed batch_size (4) or 1024: each worker \
         updates on its own slice of the batch (workers = 0 chooses automatically)"
    );
    assert!(with(4, 4).is_ok());
    assert!(with(1024, MAX_BATCH_SIZE).is_ok());
    assert!(
        with(1025, MAX_BATCH_SIZE).is_err(),
        "no more workers than threads"
    );
    assert!(with(0, 1).is_ok(), "0 = automatic");
}

#[test]
fn eval_episodes_are_bounded_like_the_command_lines_episodes() {
    let with = |eval_episodes: usize| {
        TrainConfig {
            eval_episodes,
            ..TrainConfig::default()
        }
        .validate()
    };
    for bad in [0, MAX_EPISODES + 1] {
        assert_eq!(
            with(bad).unwrap_err().to_string(),
            format!("invalid config: eval_episodes must lie in 1..=100000, got {bad}")
        );
    }
    assert!(with(MAX_EPISODES).is_ok());
}

#[test]
fn evaluation_settings_of_a_run_without_an_environment_are_noted() {
    let no_env = TrainConfig {
        env: NO_ENV.into(),
        dataset: "line.npz".into(),
        ..TrainConfig::default()
    };
    assert_eq!(no_env.unused_eval_settings(), None);
    let set = no_env
        .with_overrides(&["eval_episodes=5".into(), "execute=3".into()])
        .unwrap();
    let note = set.unused_eval_settings().unwrap();
    assert!(
        note.starts_with("note: eval_episodes, execute set, but a run with env = none"),
        "{note}"
    );
    let evaluated = TrainConfig::default()
        .with_overrides(&["eval_episodes=5".into()])
        .unwrap();
    assert_eq!(evaluated.unused_eval_settings(), None);
}

#[test]
fn data_settings_beside_a_given_dataset_are_noted() {
    let given = |dataset: &str, sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        TrainConfig {
            dataset: dataset.into(),
            ..TrainConfig::default()
        }
        .with_overrides(&sets)
        .unwrap()
        .unused_data_settings()
    };
    assert_eq!(given("mine.npz", &[]), None);
    assert_eq!(
        given("mine.npz", &["level=expert", "dataset_episodes=7"]).as_deref(),
        Some(
            "note: level, dataset_episodes set, but they describe generated data and this run reads mine.npz"
        )
    );
    // The file they generate (a finished run's config names it): no note.
    assert_eq!(
        given(
            "/runs/data/pendulum-expert-7ep.npz",
            &["level=expert", "dataset_episodes=7"]
        ),
        None
    );
    // Generated data: they are what it is made from.
    let generated = TrainConfig::default()
        .with_overrides(&["level=expert".into()])
        .unwrap();
    assert_eq!(generated.unused_data_settings(), None);
}

#[test]
fn a_section_set_whole_can_then_be_set_in_part() {
    let cfg = TrainConfig::default()
        .with_overrides(&["agent={}".into(), "agent.critic.hidden=[64]".into()])
        .unwrap();
    assert_eq!(cfg.agent.critic.hidden, vec![64]);
}

#[test]
fn integers_beyond_toml_are_refused_naming_their_key() {
    let cfg = TrainConfig {
        steps: u64::MAX,
        ..TrainConfig::default()
    };
    let expected = "invalid config: steps = 18446744073709551615 is too large (at most \
                    9223372036854775807, the largest integer config.toml holds)";
    assert_eq!(cfg.with_overrides(&[]).unwrap_err().to_string(), expected);
    assert_eq!(cfg.validate().unwrap_err().to_string(), expected);
}
