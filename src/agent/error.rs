//! Errors of the `agent` module.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("invalid agent config: {0}")]
    Config(String),
    #[error("{file}: cannot read checkpoint: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: not a valid chunkql checkpoint: {message}")]
    Checkpoint { file: String, message: String },
    #[error("{file}: cannot write checkpoint: {message}")]
    Write { file: String, message: String },
}
