//! Helpers of the end-to-end tests: the binary, a tiny pendulum config and
//! data, and reading JSONL logs.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::Command;

pub fn chunkql() -> Command {
    Command::cargo_bin("chunkql").unwrap()
}

pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("chunkql")
}

/// A small pendulum dataset and a config for tiny, fast runs.
pub fn setup(dir: &Path, steps: u64, checkpoint_every: u64) -> PathBuf {
    let data = dir.join("pendulum.npz");
    if !data.exists() {
        chunkql()
            .args(["generate", "pendulum", "--episodes", "5", "--out"])
            .arg(&data)
            .assert()
            .success();
    }
    let config = dir.join(format!("tiny-{steps}-{checkpoint_every}.toml"));
    std::fs::write(
        &config,
        format!(
            "dataset = \"{}\"\nsteps = {steps}\nbatch_size = 32\nlog_every = 10\neval_every = 100\n\
             eval_episodes = 2\ncheckpoint_every = {checkpoint_every}\nthreads = 1\n\
             [agent.critic]\nhidden = [32, 32]\n[agent.diffusion.net]\nhidden = [32, 32]\n\
             [agent.consistency.net]\nhidden = [32, 32]\n",
            data.display()
        ),
    )
    .unwrap();
    config
}

/// `line.npz` in `dir`: 3 episodes of a synthetic walk with observation
/// width 2 and action width 1, which no environment has.
pub fn line_data(dir: &Path) -> PathBuf {
    let line = dir.join("line.npz");
    chunkql()
        .args(["generate", "line", "--episodes", "3", "--out"])
        .arg(&line)
        .assert()
        .success();
    line
}

/// `chunkql train --config CONFIG --out RUN`, which must succeed.
pub fn train_into(config: &Path, run: &Path) {
    chunkql()
        .args(["train", "--config"])
        .arg(config)
        .arg("--out")
        .arg(run)
        .assert()
        .success();
}

pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("steps_per_second");
            v
        })
        .collect()
}

/// A running child's stderr, collected by a thread as it comes, so a test
/// can wait for a line (a signal handled, say) instead of sleeping.
pub struct Stderr {
    text: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Stderr {
    /// Takes `child`'s piped stderr.
    pub fn of(child: &mut Child) -> Self {
        let mut pipe = child.stderr.take().expect("stderr piped");
        let text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Self { text, reader }
    }

    /// Waits (120 s at most) until stderr holds `needle`; `child` must still
    /// be running meanwhile.
    pub fn wait_for(&self, child: &mut Child, needle: &str) {
        let start = Instant::now();
        while !self.text.lock().unwrap().contains(needle) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "ended before printing {needle:?}: {}",
                self.text.lock().unwrap()
            );
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no {needle:?} in: {}",
                self.text.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for `child` to end; its exit code (None: killed by a signal)
    /// and all it wrote to stderr.
    pub fn finish(self, mut child: Child) -> (Option<i32>, String) {
        let status = child.wait().unwrap();
        self.reader.join().unwrap();
        let text = self.text.lock().unwrap().clone();
        (status.code(), text)
    }
}
