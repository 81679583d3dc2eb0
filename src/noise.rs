//! `NoiseSource`: the one seeded random stream behind every stochastic part of
//! an update (diffusion noise, timesteps) or of acting. Noise is drawn on the
//! host and copied to the device, so results depend only on the seed, not on
//! libtorch's process-wide generator, and the stream's position can be saved
//! in a checkpoint and restored exactly.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
#[cfg(test)]
use tch::Kind;
use tch::{Device, Tensor};

/// A seeded stream of noise tensors on one device.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: ChaCha8Rng,
    device: Device,
    buffer: Vec<f32>,
    /// Tests only: every draw is 0, so that an update is a deterministic
    /// function of its batch (forks inherit it).
    #[cfg(test)]
    silent: bool,
}

/// Position of a `NoiseSource`'s stream, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseState {
    /// The 32-byte ChaCha seed, hex.
    pub seed: String,
    pub stream: u64,
    /// Word position in the stream (a u128, as a decimal string).
    pub word_pos: String,
}

impl NoiseSource {
    pub fn new(seed: u64, device: Device) -> Self {
        NoiseSource {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            buffer: Vec::new(),
            #[cfg(test)]
            silent: false,
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Standard normal noise of `shape`, f32, on the device.
    pub fn normal(&mut self, shape: &[i64]) -> Tensor {
        #[cfg(test)]
        if self.silent {
            return Tensor::zeros(shape, (Kind::Float, self.device));
        }
        let n: i64 = shape.iter().product();
        self.buffer.clear();
        let rng = &mut self.rng;
        self.buffer
            .extend((0..n).map(|_| rng.sample::<f32, _>(StandardNormal)));
        Tensor::from_slice(&self.buffer)
            .view(shape)
            .to_device(self.device)
    }

    /// `[n]` integers uniform in `0..high`, int64, on the device.
    pub fn integers(&mut self, n: usize, high: i64) -> Tensor {
        #[cfg(test)]
        if self.silent {
            return Tensor::zeros([n as i64], (Kind::Int64, self.device));
        }
        let values: Vec<i64> = (0..n).map(|_| self.rng.random_range(0..high)).collect();
        Tensor::from_slice(&values).to_device(self.device)
    }

    /// `[n]` integers uniform in `0..high`, on the host.
    #[cfg(test)]
    pub fn host_integers(&mut self, n: usize, high: usize) -> Vec<usize> {
        (0..n).map(|_| self.rng.random_range(0..high)).collect()
    }

    /// An independent source on the same device, seeded from this stream
    /// (which advances by one draw): each slice of a split update draws from
    /// its own fork, so the result does not depend on thread timing.
    pub fn fork(&mut self) -> NoiseSource {
        #[allow(unused_mut)]
        let mut fork = NoiseSource::new(self.rng.next_u64(), self.device);
        #[cfg(test)]
        {
            fork.silent = self.silent;
        }
        fork
    }

    /// Tests only: a source whose every draw is 0.
    #[cfg(test)]
    pub(crate) fn silent(device: Device) -> Self {
        NoiseSource {
            silent: true,
            ..NoiseSource::new(0, device)
        }
    }

    /// The underlying RNG, for host-side draws.
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.rng
    }

    pub fn state(&self) -> NoiseState {
        let seed = self
            .rng
            .get_seed()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        NoiseState {
            seed,
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds a source at exactly the saved position; `None` if the state is
    /// malformed.
    pub fn from_state(state: &NoiseState, device: Device) -> Option<Self> {
        if state.seed.len() != 64 || !state.seed.is_ascii() {
            return None;
        }
        let mut seed = [0u8; 32];
        for (k, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&state.seed[2 * k..2 * k + 2], 16).ok()?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos.parse().ok()?);
        Some(NoiseSource {
            rng,
            device,
            buffer: Vec::new(),
            #[cfg(test)]
            silent: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_state_round_trips() {
        let mut a = NoiseSource::new(5, Device::Cpu);
        let mut b = NoiseSource::new(5, Device::Cpu);
        assert!(a.normal(&[3, 4]).equal(&b.normal(&[3, 4])));
        let _ = a.integers(7, 5);
        let saved = a.state();
        let mut restored = NoiseSource::from_state(&saved, Device::Cpu).unwrap();
        assert!(a.normal(&[10]).equal(&restored.normal(&[10])));
        assert_eq!(a.host_integers(5, 100), restored.host_integers(5, 100));
        let json = serde_json::to_string(&saved).unwrap();
        assert_eq!(serde_json::from_str::<NoiseState>(&json).unwrap(), saved);
    }

    #[test]
    fn malformed_states_are_refused_not_panicked_on() {
        let good = NoiseSource::new(3, Device::Cpu).state();
        let mut bad = vec![];
        // "0é..." is 64 bytes whose first pair of hex digits cuts through `é`.
        for seed in [
            "0é".to_string() + &"0".repeat(61),
            "zz".repeat(32),
            "00".repeat(31),
        ] {
            bad.push(NoiseState {
                seed,
                ..good.clone()
            });
        }
        bad.push(NoiseState {
            word_pos: "-1".into(),
            ..good.clone()
        });
        for state in &bad {
            assert!(
                NoiseSource::from_state(state, Device::Cpu).is_none(),
                "{state:?}"
            );
        }
        assert!(NoiseSource::from_state(&good, Device::Cpu).is_some());
    }

    #[test]
    fn forks_are_reproducible_and_differ_from_each_other() {
        let mut a = NoiseSource::new(9, Device::Cpu);
        let mut b = NoiseSource::new(9, Device::Cpu);
        let (mut a1, mut a2) = (a.fork(), a.fork());
        let (mut b1, mut b2) = (b.fork(), b.fork());
        assert!(a1.normal(&[8]).equal(&b1.normal(&[8])));
        let (x, y) = (a2.normal(&[8]), b2.normal(&[8]));
        assert!(x.equal(&y));
        assert!(!x.equal(&a1.normal(&[8])));
        assert_eq!(a.state(), b.state());
    }

    #[test]
    fn normal_noise_has_unit_variance() {
        let x = NoiseSource::new(1, Device::Cpu).normal(&[20000]);
        assert!(x.mean(Kind::Float).double_value(&[]).abs() < 0.03);
        assert!((x.std(true).double_value(&[]) - 1.0).abs() < 0.03);
    }

    #[test]
    fn integers_cover_the_range() {
        let v: Vec<i64> = Vec::try_from(NoiseSource::new(2, Device::Cpu).integers(500, 5)).unwrap();
        assert!(v.iter().all(|&x| (0..5).contains(&x)));
        for k in 0..5 {
            assert!(v.contains(&k));
        }
    }
}
