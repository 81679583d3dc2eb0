//! Checkpoints: one `.safetensors` file per agent, written atomically. Tensors
//! `policy/`, `ema/`, `critic/`, `target/` (weights) and `actor_adam/`,
//! `critic_adam/` (Adam moments); the header's metadata key `chunkql` holds
//! `CheckpointInfo` as JSON (config, dims, normaliser, step, noise stream
//! position, Adam step counts, and the caller's extra state).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{AgentConfig, AgentError, Algorithm, ChunkAgent, ChunkPolicy};
use crate::chunk::ChunkDims;
use crate::data::Normalizer;
use crate::fsutil::atomic_write;
use crate::noise::{NoiseSource, NoiseState};

/// Version of the checkpoint layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
const META_KEY: &str = "chunkql";

/// Everything in a checkpoint besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub format: u32,
    pub algorithm: Algorithm,
    pub config: AgentConfig,
    pub dims: ChunkDims,
    pub normalizer: Normalizer,
    pub seed: u64,
    pub step: u64,
    pub noise: NoiseState,
    pub actor_adam_steps: i64,
    pub critic_adam_steps: i64,
    /// State of whoever saved the agent (the training loop's), or null.
    pub extra: serde_json::Value,
}

fn checkpoint_error(file: &Path, message: impl Into<String>) -> AgentError {
    AgentError::Checkpoint {
        file: file.display().to_string(),
        message: message.into(),
    }
}

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|error| AgentError::Io {
        file: path.display().to_string(),
        error,
    })
}

pub(crate) fn info_of(path: &Path, bytes: &[u8]) -> Result<CheckpointInfo, AgentError> {
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| checkpoint_error(path, e.to_string()))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| checkpoint_error(path, "no chunkql metadata in the safetensors header"))?;
    let info: CheckpointInfo = serde_json::from_str(json)
        .map_err(|e| checkpoint_error(path, format!("bad metadata: {e}")))?;
    if info.format != FORMAT_VERSION {
        return Err(checkpoint_error(
            path,
            format!(
                "format {} (this chunkql reads {FORMAT_VERSION})",
                info.format
            ),
        ));
    }
    Ok(info)
}

/// Reads only the metadata of a checkpoint (which agent, config, step, ...).
pub fn read_checkpoint_info(path: &Path) -> Result<CheckpointInfo, AgentError> {
    info_of(path, &read_bytes(path)?)
}

/// f32 tensor -> (shape, little-endian bytes).
fn to_bytes(t: &Tensor) -> (Vec<usize>, Vec<u8>) {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let mut values = vec![0f32; t.numel()];
    let n = values.len();
    t.copy_data(&mut values, n);
    (shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn from_view(view: &TensorView<'_>) -> Option<Tensor> {
    if view.dtype() != Dtype::F32 {
        return None;
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Some(Tensor::from_slice(&values).view(shape.as_slice()))
}

impl<P: ChunkPolicy> ChunkAgent<P> {
    /// Writes the agent to `path` atomically (temporary file + rename), with
    /// `extra` stored in the metadata.
    pub fn save(&self, path: &Path, extra: serde_json::Value) -> Result<(), AgentError> {
        let info = CheckpointInfo {
            format: FORMAT_VERSION,
            algorithm: P::ALGORITHM,
            config: self.config.clone(),
            dims: self.dims,
            normalizer: self.normalizer.clone(),
            seed: self.seed,
            step: self.step,
            noise: self.noise.state(),
            actor_adam_steps: self.actor_opt.steps_taken(),
            critic_adam_steps: self.critic_opt.steps_taken(),
            extra,
        };
        let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (store, name, var) in self.variables() {
            let (shape, bytes) = to_bytes(&var);
            named.push((format!("{store}/{name}"), shape, bytes));
        }
        for (prefix, opt) in [
            ("actor_adam", &self.actor_opt),
            ("critic_adam", &self.critic_opt),
        ] {
            for (name, tensor) in opt.state() {
                let (shape, bytes) = to_bytes(tensor);
                named.push((format!("{prefix}/{name}"), shape, bytes));
            }
        }
        let write_error = |message: String| AgentError::Write {
            file: path.display().to_string(),
            message,
        };
        let views = named
            .iter()
            .map(|(name, shape, bytes)| {
                Ok((
                    name.as_str(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| write_error(e.to_string()))?;
        let json = serde_json::to_string(&info).map_err(|e| write_error(e.to_string()))?;
        let metadata = HashMap::from([(META_KEY.to_string(), json)]);
        let bytes = safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| write_error(e.to_string()))?;
        atomic_write(path, |out| std::io::Write::write_all(out, &bytes))
            .map_err(|e| write_error(e.to_string()))
    }

    /// Loads an agent saved by [`ChunkAgent::save`] onto `device`; it acts and
    /// trains exactly as the saved one would have. Fails with a clear error
    /// for a missing, corrupt or foreign file, or one of the other algorithm.
    pub fn load(path: &Path, device: Device) -> Result<Self, AgentError> {
        Self::load_bytes(path, &read_bytes(path)?, device)
    }

    /// [`ChunkAgent::load`] from the bytes of the file at `path`, already
    /// read.
    pub(crate) fn load_bytes(
        path: &Path,
        bytes: &[u8],
        device: Device,
    ) -> Result<Self, AgentError> {
        let info = info_of(path, bytes)?;
        if info.algorithm != P::ALGORITHM {
            return Err(checkpoint_error(
                path,
                format!("it holds a {} agent, not {}", info.algorithm, P::ALGORITHM),
            ));
        }
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| checkpoint_error(path, e.to_string()))?;
        let get = |name: &str| tensors.tensor(name).ok().as_ref().and_then(from_view);
        let mut agent = Self::new(info.config, info.dims, info.normalizer, device, info.seed)
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        crate::nn::no_grad(|| {
            for (store, name, var) in agent.variables() {
                let key = format!("{store}/{name}");
                let saved = get(&key)
                    .ok_or_else(|| checkpoint_error(path, format!("missing tensor {key}")))?;
                if saved.size() != var.size() {
                    return Err(checkpoint_error(
                        path,
                        format!(
                            "tensor {key} has shape {:?}, expected {:?}",
                            saved.size(),
                            var.size()
                        ),
                    ));
                }
                var.shallow_clone().copy_(&saved);
            }
            Ok(())
        })?;
        agent
            .actor_opt
            .load_state(info.actor_adam_steps, |n| get(&format!("actor_adam/{n}")))
            .map_err(|m| checkpoint_error(path, m))?;
        agent
            .critic_opt
            .load_state(info.critic_adam_steps, |n| get(&format!("critic_adam/{n}")))
            .map_err(|m| checkpoint_error(path, m))?;
        agent.noise = NoiseSource::from_state(&info.noise, device)
            .ok_or_else(|| checkpoint_error(path, "bad noise state"))?;
        agent.step = info.step;
        agent.set_learning_rates();
        Ok(agent)
    }
}
