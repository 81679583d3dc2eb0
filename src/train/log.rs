//! JSON-lines logs of a run: one object per line, appended and flushed as the
//! run goes; on resume, rows past the checkpoint are dropped so that the log
//! of a resumed run equals that of an uninterrupted one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::agent::Metrics;
use crate::eval::EvalReport;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Updates per second since the run (or the resume) started.
    pub steps_per_second: f64,
}

/// One line of `eval.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub step: u64,
    pub episodes: usize,
    pub mean_return: f64,
    /// The return's 95% interval over episodes; `null` when it is not finite
    /// (a single episode has no interval).
    #[serde(default)]
    pub return_low: Option<f64>,
    #[serde(default)]
    pub return_high: Option<f64>,
    pub normalized_score: Option<f64>,
    /// The normalised score's 95% interval (`null` as above; absent in logs
    /// written before 2026-12-02).
    #[serde(default)]
    pub score_low: Option<f64>,
    #[serde(default)]
    pub score_high: Option<f64>,
    pub success_rate: Option<f64>,
}

impl EvalRow {
    pub fn of(step: u64, report: &EvalReport) -> Self {
        EvalRow {
            step,
            episodes: report.episodes.len(),
            mean_return: report.episode_return.mean,
            return_low: finite(report.episode_return.low),
            return_high: finite(report.episode_return.high),
            normalized_score: report.normalized_score.map(|s| s.mean),
            score_low: report.normalized_score.and_then(|s| finite(s.low)),
            score_high: report.normalized_score.and_then(|s| finite(s.high)),
            success_rate: report.success_rate.map(|s| s.mean),
        }
    }
}

/// `Some(x)` for a finite `x`: JSON has no infinities (serde_json writes
/// them as `null`, which an `f64` field would then refuse to read back).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Appends JSON lines to a file.
pub struct Appender {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Appender {
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io("open", path, e))?;
        Ok(Appender {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Appends one row and writes it out at once (a row every `log_every`
    /// updates: cheap, and whoever watches the file sees it).
    pub fn append<T: Serialize>(&mut self, row: &T) -> Result<(), TrainError> {
        let line = serde_json::to_string(row).expect("rows serialise");
        writeln!(self.out, "{line}").map_err(|e| TrainError::io("write", &self.path, e))?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.out
            .flush()
            .map_err(|e| TrainError::io("write", &self.path, e))
    }

    /// Flushes and syncs the rows to the disk: done before a checkpoint is
    /// written (and synced), so that after a power loss the logs are never
    /// behind the checkpoint a resume continues from.
    pub fn sync(&mut self) -> Result<(), TrainError> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| TrainError::io("sync", &self.path, e))
    }
}

/// The rows of a JSON-lines file that parse (a line torn by a kill does not);
/// an empty list when the file does not exist.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut rows = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Ok(row) = serde_json::from_str(&line) {
            rows.push(row);
        }
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct Step {
    step: u64,
}

/// The `step` of the last row of `path` that has one; `None` for a missing
/// or empty file.
pub fn last_step(path: &Path) -> Result<Option<u64>, TrainError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("read", path, e))?;
    Ok(text
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Step>(line).ok())
        .map(|row| row.step))
}

/// Keeps the lines of `path` whose `step` is at most `step` (atomically).
pub fn truncate_after(path: &Path, step: u64) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("read", path, e))?;
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<Step>(line).is_ok_and(|s| s.step <= step))
        .map(|line| format!("{line}\n"))
        .collect();
    crate::fsutil::atomic_write(path, |w| w.write_all(kept.as_bytes()))
        .map_err(|e| TrainError::io("rewrite", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_rows_up_to_the_step_and_drops_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(
            &path,
            "{\"step\":1,\"x\":1}\n{\"step\":2,\"x\":2}\n{\"step\":3,\"x\":3}\n{\"step\":4,\"x\"",
        )
        .unwrap();
        truncate_after(&path, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1,\"x\":1}\n{\"step\":2,\"x\":2}\n"
        );
        let rows: Vec<serde_json::Value> = read_jsonl(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            read_jsonl::<serde_json::Value>(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn eval_rows_keep_the_score_interval_and_old_rows_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.jsonl");
        let row = EvalRow {
            step: 100,
            episodes: 10,
            mean_return: -400.0,
            return_low: Some(-700.0),
            return_high: Some(-100.0),
            normalized_score: Some(75.0),
            score_low: Some(40.0),
            score_high: Some(110.0),
            success_rate: None,
        };
        let mut out = Appender::open(&path).unwrap();
        out.append(&row).unwrap();
        out.flush().unwrap();
        // A row written before the interval was logged: no score_low/high.
        let old = "{\"step\":200,\"episodes\":10,\"mean_return\":-300.0,\"return_low\":-600.0,\
                   \"return_high\":0.0,\"normalized_score\":80.0,\"success_rate\":null}\n";
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(old);
        std::fs::write(&path, text).unwrap();
        let rows: Vec<EvalRow> = read_jsonl(&path).unwrap();
        assert_eq!(rows.len(), 2, "the old row must not be dropped");
        assert_eq!(rows[0], row);
        assert_eq!(rows[1].normalized_score, Some(80.0));
        assert_eq!((rows[1].score_low, rows[1].score_high), (None, None));
        assert_eq!(rows[1].return_high, Some(0.0));
    }

    /// One episode has no interval: the row says so with nulls and still
    /// reads back (an infinite bound used to be written as null into an f64
    /// field, and the row was then skipped as unreadable).
    #[test]
    fn an_evaluation_of_one_episode_is_logged_and_read_back() {
        use crate::eval::{EvalReport, mean_ci};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.jsonl");
        let report = EvalReport {
            env: "pendulum".into(),
            episodes: Vec::new(),
            execute: 4,
            ensemble: None,
            episode_return: mean_ci(&[-900.0]),
            normalized_score: Some(mean_ci(&[30.0])),
            success_rate: None,
        };
        let row = EvalRow::of(5, &report);
        assert_eq!((row.return_low, row.score_high), (None, None));
        let mut out = Appender::open(&path).unwrap();
        out.append(&row).unwrap();
        out.flush().unwrap();
        let rows: Vec<EvalRow> = read_jsonl(&path).unwrap();
        assert_eq!(rows, vec![row]);
        assert_eq!(rows[0].mean_return, -900.0);
        assert_eq!((rows[0].return_low, rows[0].return_high), (None, None));
        assert_eq!(rows[0].normalized_score, Some(30.0));
        assert_eq!((rows[0].score_low, rows[0].score_high), (None, None));
    }
}
