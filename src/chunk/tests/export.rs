//! What leaves the index: the batch's byte count and the exported `.npz`.

use super::*;

#[test]
fn batch_bytes_count_every_column_of_a_batch() {
    // O 3, A 2, H 4, To 2: 4 (2 * 2 * 3 + 4 * 2 + 4 + 3) + 16 = 4 * 27 + 16 = 124.
    let spec = ChunkSpec::new(4, 0.9, 2).unwrap();
    let batch = ChunkBatch::zeros(5, spec, 3, 2);
    assert_eq!(batch.dims().bytes(1), 124);
    assert_eq!(batch.dims().bytes(5), 620);
    let held = 4
        * (batch.observations.len()
            + batch.next_observations.len()
            + batch.actions.len()
            + batch.action_mask.len()
            + batch.cumulative_reward.len()
            + batch.chunk_done.len()
            + batch.discount_factor.len())
        + 8 * (batch.effective_length.len() + batch.start_index.len());
    assert_eq!(batch.dims().bytes(5), held as u128);
    // The largest widths do not overflow: u128 holds them.
    let huge = ChunkDims {
        obs_dim: usize::MAX,
        act_dim: usize::MAX,
        horizon: MAX_LENGTH,
        obs_horizon: MAX_LENGTH,
    };
    assert!(huge.bytes(65_536) > 1 << 64);
    assert_eq!(gib(3 << 29), "1.5 GiB");
}

#[test]
fn exported_chunks_read_back_with_the_documented_keys() {
    let index = ChunkIndex::new(three_episodes(false), ChunkSpec::new(3, 0.5, 2).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunks.npz");
    write_chunks_npz(&path, &index.all()).unwrap();
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut names = npz.names().unwrap();
    names.sort();
    let mut keys: Vec<String> = CHUNK_KEYS.iter().map(|k| k.to_string()).collect();
    keys.sort();
    assert_eq!(names, keys);
    let actions: ndarray::Array3<f32> = npz.by_name("actions").unwrap();
    assert_eq!(actions.shape(), &[4, 3, 1]);
    assert_eq!(actions[[1, 2, 0]], 12.0);
    let start: ndarray::Array1<i64> = npz.by_name("start_index").unwrap();
    assert_eq!(start.to_vec(), vec![0, 1, 2, 3]);
    // Every key holds the field of its name, in its documented shape (a key
    // written under another's name, or [B, O, To] for [B, To, O], fails
    // here); the fields themselves are the hand-worked table above.
    let all = index.all();
    let mut f32_key = |key: &str, shape: &[usize], field: &[f32]| {
        let array: ndarray::ArrayD<f32> = npz.by_name(key).unwrap();
        assert_eq!(array.shape(), shape, "{key}");
        assert_eq!(array.iter().copied().collect::<Vec<_>>(), field, "{key}");
    };
    f32_key("observations", &[4, 2, 1], &all.observations);
    f32_key("next_observations", &[4, 2, 1], &all.next_observations);
    f32_key("actions", &[4, 3, 1], &all.actions);
    f32_key("action_mask", &[4, 3], &all.action_mask);
    f32_key("cumulative_reward", &[4], &all.cumulative_reward);
    f32_key("chunk_done", &[4], &all.chunk_done);
    f32_key("discount_factor", &[4], &all.discount_factor);
    let tau: ndarray::Array1<i64> = npz.by_name("effective_length").unwrap();
    assert_eq!(tau.to_vec(), all.effective_length);
    assert_ne!(all.observations, all.next_observations);
    assert_ne!(all.cumulative_reward, all.discount_factor);
}
