//! Copies that follow a network: the EMA policy and the target critics.
//! Both stores are packed ([`FlatVariables`]), so a copy or an EMA step is
//! one kernel over the whole network.

use tch::{Tensor, nn};

use crate::nn::FlatVariables;

/// The packed buffers `[N]` of a follower store and of the store it follows.
#[derive(Debug)]
pub struct Tracking {
    follower: Tensor,
    source: Tensor,
}

impl Tracking {
    /// Packs both stores; they must hold the same network (same variable
    /// names and shapes).
    pub fn new(follower: &nn::VarStore, source: &nn::VarStore) -> Self {
        let follower = FlatVariables::of(follower);
        let source = FlatVariables::of(source);
        let layout = |f: &FlatVariables| -> Vec<(String, Vec<i64>)> {
            f.variables()
                .iter()
                .map(|(name, var)| (name.clone(), var.size()))
                .collect()
        };
        assert_eq!(
            layout(&follower),
            layout(&source),
            "a tracking copy must have the same variables as its source"
        );
        Tracking {
            follower: follower.values().shallow_clone(),
            source: source.values().shallow_clone(),
        }
    }

    /// follower <- source.
    pub fn copy(&self) {
        crate::nn::no_grad(|| {
            self.follower.shallow_clone().copy_(&self.source);
        });
    }

    /// follower <- follower + weight (source - follower): a soft update with
    /// rate `weight` (= tau), or an EMA step with decay 1 - weight.
    pub fn lerp(&self, weight: f64) {
        crate::nn::no_grad(|| {
            let _ = self.follower.shallow_clone().lerp_(&self.source, weight);
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
