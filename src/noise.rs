//! `NoiseSource`: the one seeded random stream behind every stochastic part of
//! an update (diffusion noise, timesteps) or of acting. Results depend only
//! on the seed, and the stream's position can be saved in a checkpoint and
//! restored exactly.
//!
//! On the CPU every value is drawn from the host stream. On a GPU, where
//! drawing millions of values on one host core and copying them over cost
//! more than the whole update (40 ms per Diffusion-QL update at batch 16384;
//! docs/scaling.md), each normal tensor takes one seed from the host stream
//! and its values from libtorch's generator of that device (Philox), seeded
//! with it just before the draw, under a lock: the values depend on the seed
//! and the device alone, never on what else used that process-wide generator.

use std::sync::{Mutex, PoisonError};

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Where a source's normal values are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// Every value from the host stream, then copied to the device.
    Host,
    /// One seed per tensor from the host stream; the values from libtorch's
    /// generator of the device, seeded with it.
    OnDevice,
}

impl Draw {
    /// The GPU draws its own noise; the CPU keeps the host stream (what every
    /// CPU run, and every published score, was made with).
    fn for_device(device: Device) -> Draw {
        if device.is_cuda() {
            Draw::OnDevice
        } else {
            Draw::Host
        }
    }
}

/// Held from seeding libtorch's generator to drawing from it, so that two
/// sources on two threads cannot interleave a seed and a draw.
static SEEDED_DRAW: Mutex<()> = Mutex::new(());

/// A seeded stream of noise tensors on one device.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: ChaCha8Rng,
    device: Device,
    draw: Draw,
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
            draw: Draw::for_device(device),
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
        if self.draw == Draw::OnDevice {
            let seed = self.rng.next_u64();
            let _seeded = SEEDED_DRAW.lock().unwrap_or_else(PoisonError::into_inner);
            if self.device.is_cuda() {
                tch::Cuda::manual_seed_all(seed);
            } else {
                // (tests: the same path on the CPU's generator)
                tch::manual_seed(seed as i64);
            }
            // A GPU kernel takes its generator's seed and offset as
            // arguments when it is launched, inside the lock.
            return Tensor::randn(shape, (Kind::Float, self.device));
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
        let mut fork = NoiseSource::new(self.rng.next_u64(), self.device);
        fork.draw = self.draw;
        #[cfg(test)]
        {
            fork.silent = self.silent;
        }
        fork
    }

    /// Tests only: a CPU source that draws as a GPU source does (one seed per
    /// tensor, the values from libtorch's generator).
    #[cfg(test)]
    pub(crate) fn drawing_on_device(mut self) -> Self {
        self.draw = Draw::OnDevice;
        self
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
            draw: Draw::for_device(device),
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

    /// The GPU's way of drawing, here on the CPU's generator: the values of
    /// a tensor follow from the source's seed alone, whatever else draws
    /// from libtorch's generator in between; the state round-trips; forks
    /// draw the same way; the values are standard normal.
    #[test]
    fn drawing_on_the_device_is_reproducible_whatever_else_draws() {
        let source = |seed| NoiseSource::new(seed, Device::Cpu).drawing_on_device();
        let mut a = source(5);
        let first = a.normal(&[4, 6]);
        let _ = Tensor::randn([100], (Kind::Float, Device::Cpu)); // someone else's draw
        let _ = source(6).normal(&[3]); // another source's draw
        let second = a.normal(&[4, 6]);
        let mut replay = source(5);
        assert!(replay.normal(&[4, 6]).equal(&first));
        assert!(replay.normal(&[4, 6]).equal(&second));
        assert!(!first.equal(&second));
        // (a host-drawn source with the same seed makes other values)
        assert!(
            !NoiseSource::new(5, Device::Cpu)
                .normal(&[4, 6])
                .equal(&first)
        );

        let saved = a.state();
        let mut restored = NoiseSource::from_state(&saved, Device::Cpu)
            .unwrap()
            .drawing_on_device();
        assert!(a.normal(&[10]).equal(&restored.normal(&[10])));

        let (mut f, mut g) = (a.fork(), restored.fork());
        assert_eq!(f.draw, Draw::OnDevice);
        assert!(f.normal(&[8]).equal(&g.normal(&[8])));

        let x = source(1).normal(&[20000]);
        assert!(x.mean(Kind::Float).double_value(&[]).abs() < 0.03);
        assert!((x.std(true).double_value(&[]) - 1.0).abs() < 0.03);
    }

    /// Sources on several threads drawing at once each get the values a
    /// lone source with their seed gets: a seed and its draw are never
    /// split by another thread's.
    #[test]
    fn concurrent_on_device_draws_do_not_mix() {
        let alone: Vec<Tensor> = (0..4)
            .map(|seed| {
                let mut s = NoiseSource::new(seed, Device::Cpu).drawing_on_device();
                Tensor::cat(&(0..50).map(|_| s.normal(&[64])).collect::<Vec<_>>(), 0)
            })
            .collect();
        let together: Vec<Tensor> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|seed| {
                    scope.spawn(move || {
                        let mut s = NoiseSource::new(seed, Device::Cpu).drawing_on_device();
                        let draws: Vec<Tensor> = (0..50).map(|_| s.normal(&[64])).collect();
                        Tensor::cat(&draws, 0)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b) in alone.iter().zip(&together) {
            assert!(a.equal(b));
        }
    }

    /// CPU and GPU sources pick their way of drawing by device.
    #[test]
    fn the_cpu_draws_on_the_host_and_a_gpu_on_itself() {
        assert_eq!(Draw::for_device(Device::Cpu), Draw::Host);
        assert_eq!(Draw::for_device(Device::Cuda(0)), Draw::OnDevice);
        assert_eq!(Draw::for_device(Device::Cuda(1)), Draw::OnDevice);
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
