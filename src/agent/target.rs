//! The critic's Bellman target (DESIGN.md 1), as one small function.

use tch::Tensor;

/// y = cumulative_reward + (1 - chunk_done) * discount_factor * next_q.
///
/// All `[B]`. For the SMDP target, `cumulative_reward` = sum_{i<tau} gamma^i
/// r_{t+i}, `discount_factor` = gamma^tau and `next_q` = min_j Q'_j(s_{t+tau},
/// a') (max over sampled a' with max-Q backup); `chunk_done` is 1 only for a
/// termination inside the chunk, never for a timeout.
pub fn bellman_target(
    cumulative_reward: &Tensor,
    chunk_done: &Tensor,
    discount_factor: &Tensor,
    next_q: &Tensor,
) -> Tensor {
    cumulative_reward + (1.0 - chunk_done) * discount_factor * next_q
}

/// The value to back up from `q` `[B * k]` (min over critics already taken)
/// for B states with k sampled chunks each: the max over the k samples ->
/// `[B]`.
pub fn max_over_samples(q: &Tensor, batch: i64) -> Tensor {
    q.view([batch, -1]).amax(1, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn target_by_hand() {
        // gamma 0.5. Row 0: full chunk of 3, R = 3, not done, next Q 8:
        //   y = 3 + 0.125 * 8 = 4.
        // Row 1: chunk cut to 2 by a termination: y = R = 4 (next Q ignored).
        // Row 2: chunk cut to 1 by a timeout: bootstrapped, y = 1 + 0.5 * -2 = 0.
        let y = bellman_target(
            &t(&[3.0, 4.0, 1.0]),
            &t(&[0.0, 1.0, 0.0]),
            &t(&[0.125, 0.25, 0.5]),
            &t(&[8.0, 100.0, -2.0]),
        );
        assert_eq!(Vec::<f32>::try_from(y).unwrap(), vec![4.0, 4.0, 0.0]);
    }

    #[test]
    fn max_over_samples_by_hand() {
        // B = 2 states, k = 3 samples each, rows [s0 s0 s0 s1 s1 s1].
        let q = t(&[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]);
        assert_eq!(
            Vec::<f32>::try_from(max_over_samples(&q, 2)).unwrap(),
            vec![5.0, -1.0]
        );
    }
}
