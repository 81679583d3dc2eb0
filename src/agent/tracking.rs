//! Copies that follow a network: the EMA policy and the target critics.

use std::collections::BTreeMap;

use tch::{Tensor, nn};

/// (follower, source) variable pairs of two identically built `VarStore`s.
#[derive(Debug)]
pub struct Tracking {
    pairs: Vec<(Tensor, Tensor)>,
}

impl Tracking {
    /// Pairs variables by name; both stores must hold the same network.
    pub fn new(follower: &nn::VarStore, source: &nn::VarStore) -> Self {
        let sources: BTreeMap<String, Tensor> = source.variables().into_iter().collect();
        let followers: BTreeMap<String, Tensor> = follower.variables().into_iter().collect();
        assert_eq!(
            sources.keys().collect::<Vec<_>>(),
            followers.keys().collect::<Vec<_>>(),
            "a tracking copy must have the same variables as its source"
        );
        let pairs = followers.into_values().zip(sources.into_values()).collect();
        Tracking { pairs }
    }

    /// follower <- source.
    pub fn copy(&self) {
        tch::no_grad(|| {
            for (follower, source) in &self.pairs {
                follower.shallow_clone().copy_(source);
            }
        });
    }

    /// follower <- follower + weight (source - follower): a soft update with
    /// rate `weight` (= tau), or an EMA step with decay 1 - weight.
    pub fn lerp(&self, weight: f64) {
        tch::no_grad(|| {
            for (follower, source) in &self.pairs {
                let _ = follower.shallow_clone().lerp_(source, weight);
            }
        });
    }
}

/// Turns gradient tracking of every variable of `vs` on or off (the critic is
/// frozen while the actor's loss is differentiated through it).
pub fn set_requires_grad(vs: &nn::VarStore, on: bool) {
    for (_, var) in vs.variables() {
        let _ = var.set_requires_grad(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn lerp_and_copy_follow_the_source() {
        let source = nn::VarStore::new(Device::Cpu);
        let follower = nn::VarStore::new(Device::Cpu);
        let s = source
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, 3.0]));
        let f = follower
            .root()
            .var_copy("w", &Tensor::from_slice(&[0.0f32, 0.0]));
        let tracking = Tracking::new(&follower, &source);
        tracking.lerp(0.25);
        assert_eq!(Vec::<f32>::try_from(&f).unwrap(), vec![0.25, 0.75]);
        tracking.copy();
        assert!(f.equal(&s));
        assert!(f.requires_grad(), "still a variable");
        let _ = Kind::Float;
    }
}
