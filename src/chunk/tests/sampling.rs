//! The sampler: reproducible for a seed, every start equally likely.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

#[test]
fn sampling_is_reproducible_for_a_seed_and_reuses_the_batch() {
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let a = index.sample(70, &mut ChaCha8Rng::seed_from_u64(7));
    let b = index.sample(70, &mut ChaCha8Rng::seed_from_u64(7));
    let c = index.sample(70, &mut ChaCha8Rng::seed_from_u64(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mut reused = index.empty_batch(70);
    index.sample_into(&mut reused, &mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(reused, a);
    // Every sampled row is the row the table gives for its start.
    let table = rows_of(&index.all());
    for row in rows_of(&a) {
        assert_eq!(row, table[row.0 as usize]);
    }
}

/// Starts are drawn uniformly: 9000 draws over the 9 starts of the toy
/// with next_observations land within 5 standard deviations of 1000 each
/// (a draw from `0..n - 1`, which never reaches the last start, fails).
#[test]
fn sampling_draws_every_start_uniformly() {
    let index = ChunkIndex::new(three_episodes(true), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let n = index.len();
    let draws = 1000 * n;
    let batch = index.sample(draws, &mut ChaCha8Rng::seed_from_u64(3));
    let mut counts = vec![0usize; n];
    for &t in &batch.start_index {
        counts[t as usize] += 1;
    }
    let (mean, p) = (1000.0, 1.0 / n as f64);
    let sd = (draws as f64 * p * (1.0 - p)).sqrt();
    for (start, &count) in counts.iter().enumerate() {
        assert!(
            (count as f64 - mean).abs() < 5.0 * sd,
            "start {start} drawn {count} times of {draws} ({counts:?})"
        );
    }
}
