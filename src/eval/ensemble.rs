//! Temporal ensembling of action chunks (ACT, Zhao et al. 2023): the policy
//! is asked for a chunk at every step, and the action executed at step t is
//! the weighted mean of what every chunk still covering t proposes for it,
//! `a_t = sum_i w_i a_t^(i) / sum_i w_i` with `w_i = exp(-m i)`, i = 0 the
//! oldest chunk. `m > 0` trusts the older predictions more (ACT uses 0.01),
//! `m = 0` is the plain mean, `m < 0` favours the newest.
//!
//! This is an execution scheme for deployment, not the SMDP of training:
//! the critic valued chunks executed open loop, `execute` steps at a time.

use std::collections::VecDeque;

/// The chunks one episode's policy proposed in its last H steps.
#[derive(Debug, Clone)]
pub struct TemporalEnsemble {
    m: f64,
    horizon: usize,
    act_dim: usize,
    /// Oldest first; each `[H, A]`, flat.
    chunks: VecDeque<Vec<f32>>,
    /// `[A]`: the weighted sum being formed (kept: no allocation per step).
    sum: Vec<f64>,
}

impl TemporalEnsemble {
    /// An empty ensemble over chunks `[horizon, act_dim]` with weight
    /// decay `m` (finite).
    pub fn new(m: f64, horizon: usize, act_dim: usize) -> Self {
        assert!(m.is_finite(), "the ensemble's m must be finite, got {m}");
        TemporalEnsemble {
            m,
            horizon,
            act_dim,
            chunks: VecDeque::with_capacity(horizon),
            sum: vec![0.0; act_dim],
        }
    }

    /// Adds the chunk `[H, A]` proposed at this step and writes the action
    /// `[A]` to execute now into `action`; the next call is the next step.
    pub fn step(&mut self, chunk: &[f32], action: &mut [f32]) {
        let (h, a) = (self.horizon, self.act_dim);
        assert_eq!(chunk.len(), h * a, "a chunk is [H, A]");
        assert_eq!(action.len(), a, "an action is [A]");
        if self.chunks.len() == h {
            // Proposed H steps ago: it no longer covers this step.
            let mut oldest = self.chunks.pop_front().expect("H >= 1 chunks");
            oldest.copy_from_slice(chunk);
            self.chunks.push_back(oldest);
        } else {
            self.chunks.push_back(chunk.to_vec());
        }
        let n = self.chunks.len();
        let sum = &mut self.sum;
        sum.fill(0.0);
        let mut total = 0f64;
        // The largest exponent, taken out of every weight (it cancels in
        // the mean): the largest weight is 1, so no m overflows to inf/inf.
        let shift = match self.m >= 0.0 {
            true => 0.0,
            false => -self.m * (n - 1) as f64,
        };
        for (i, proposed) in self.chunks.iter().enumerate() {
            // Chunk i was proposed n - 1 - i steps ago: its entry for now.
            let at = n - 1 - i;
            let w = (-self.m * i as f64 - shift).exp();
            total += w;
            for (s, &x) in sum.iter_mut().zip(&proposed[at * a..(at + 1) * a]) {
                *s += w * x as f64;
            }
        }
        for (out, s) in action.iter_mut().zip(sum.iter()) {
            *out = (s / total) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H = 3, A = 1; the chunk proposed at step t is [10t, 10t + 1, 10t + 2].
    fn actions(m: f64, steps: usize) -> Vec<f32> {
        let mut ensemble = TemporalEnsemble::new(m, 3, 1);
        let mut action = [0f32];
        (0..steps)
            .map(|t| {
                let t = t as f32;
                ensemble.step(&[10.0 * t, 10.0 * t + 1.0, 10.0 * t + 2.0], &mut action);
                action[0]
            })
            .collect()
    }

    #[test]
    fn the_plain_mean_of_every_chunk_covering_the_step() {
        // t = 0: only chunk 0's entry 0: 0. t = 1: chunk 0's entry 1 (1)
        // and chunk 1's entry 0 (10): 5.5. t >= 2: chunk t-2's entry 2
        // (10t - 18), chunk t-1's entry 1 (10t - 9), chunk t's entry 0
        // (10t): mean 10t - 9, i.e. 11, 21, 31.
        assert_eq!(actions(0.0, 5), vec![0.0, 5.5, 11.0, 21.0, 31.0]);
    }

    #[test]
    fn older_chunks_weigh_more_with_positive_m() {
        // m = ln 2: weights 1, 1/2, 1/4 from the oldest. t = 1:
        // (1 * 1 + 0.5 * 10) / 1.5 = 4. t = 2: (2 + 0.5 * 11 + 0.25 * 20)
        // / 1.75 = 12.5 / 1.75 = 7.142857; each later step adds 10.
        let got = actions(2f64.ln(), 5);
        let want = [0.0, 4.0, 7.142857, 17.142857, 27.142857];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        // m < 0 favours the newest: at t = 1 with m = -ln 2, weights 1 and
        // 2: (1 + 2 * 10) / 3 = 7.
        assert!((actions(-(2f64.ln()), 2)[1] - 7.0).abs() < 1e-6);
    }

    #[test]
    fn a_steep_m_executes_the_newest_or_the_oldest_proposal() {
        // exp(1000) overflows f64; the weights relative to the largest do
        // not: all weight on the newest chunk (m = -1000), whose entry 0 is
        // 10t, or on the oldest (m = 1000): 0, 1, then 10t - 18.
        assert_eq!(actions(-1000.0, 4), vec![0.0, 10.0, 20.0, 30.0]);
        assert_eq!(actions(1000.0, 4), vec![0.0, 1.0, 2.0, 12.0]);
    }

    #[test]
    fn with_h_1_it_executes_each_chunk_as_is() {
        let mut ensemble = TemporalEnsemble::new(0.01, 1, 2);
        let mut action = [0f32; 2];
        for t in 0..4 {
            let chunk = [t as f32, -(t as f32)];
            ensemble.step(&chunk, &mut action);
            assert_eq!(action, chunk);
        }
    }
}
