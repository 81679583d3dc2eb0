"""The chunk sampling of benches/sampling.rs written with numpy fancy indexing,
as a numpy user would: same data shape (1M steps, obs 17, action 6, episodes of
1000 ending in a timeout, next_observations present), batches of 256 chunks,
To = 2, H = 4 and 16. Prints index build time and batches/s.

Run: .venv/bin/python bench/numpy_sampling.py   (or `make bench`)
"""

import time

import numpy as np

ROWS, EPISODE, OBS, ACT, BATCH, TO, GAMMA = 1_000_000, 1000, 17, 6, 256, 2, 0.99

rng = np.random.default_rng(0)
observations = rng.uniform(-1, 1, (ROWS, OBS)).astype(np.float32)
next_observations = rng.uniform(-1, 1, (ROWS, OBS)).astype(np.float32)
actions = rng.uniform(-1, 1, (ROWS, ACT)).astype(np.float32)
rewards = rng.uniform(-1, 1, ROWS).astype(np.float32)
terminals = np.zeros(ROWS, dtype=bool)
timeouts = (np.arange(ROWS) % EPISODE) == EPISODE - 1


def build_index(horizon):
    """Vectorised: episode start/end of every row, tau, next-state row."""
    ends = np.flatnonzero(terminals | timeouts)
    if len(ends) == 0 or ends[-1] != ROWS - 1:
        ends = np.append(ends, ROWS - 1)
    episode_of_row = np.searchsorted(ends, np.arange(ROWS))
    episode_end = ends[episode_of_row]
    starts_of_episodes = np.concatenate([[0], ends[:-1] + 1])
    episode_start = starts_of_episodes[episode_of_row]
    t = np.arange(ROWS)
    tau = np.minimum(horizon, episode_end - t + 1)
    # next_observations present: every start is sampleable, next row t+tau-1.
    return t, episode_start, tau, t + tau - 1


def sample(index, horizon, gamma_powers, generator):
    t_all, b_all, tau_all, next_all = index
    pick = generator.integers(0, len(t_all), BATCH)
    t, b, tau, next_row = t_all[pick], b_all[pick], tau_all[pick], next_all[pick]
    steps = np.arange(horizon)
    hist = np.arange(TO) - (TO - 1)
    obs = observations[np.maximum(t[:, None] + hist, b[:, None])]
    act_rows = t[:, None] + np.minimum(steps, tau[:, None] - 1)
    act = actions[act_rows]
    mask = (steps[None, :] < tau[:, None]).astype(np.float32)
    cum_reward = (rewards[act_rows] * gamma_powers[None, :horizon] * mask).sum(axis=1)
    done = terminals[t + tau - 1].astype(np.float32)
    discount = gamma_powers[tau]
    next_hist_rows = np.maximum((t + tau)[:, None] + hist[:-1], b[:, None])
    next_obs = np.concatenate(
        [observations[next_hist_rows], next_observations[next_row][:, None, :]], axis=1
    )
    return obs, act, mask, cum_reward, done, discount, tau, next_obs


def main():
    print(f"numpy {np.__version__}, rows {ROWS}, batch {BATCH}, To {TO}")
    build_times = []
    for _ in range(5):
        start = time.perf_counter()
        build_index(4)
        build_times.append(time.perf_counter() - start)
    print(f"index_build 1M rows H4: {1e3 * np.median(build_times):.1f} ms (median of 5)")
    for horizon in (4, 16):
        index = build_index(horizon)
        gamma_powers = GAMMA ** np.arange(horizon + 1, dtype=np.float64)
        generator = np.random.default_rng(1)
        for _ in range(200):  # warm-up
            sample(index, horizon, gamma_powers, generator)
        rates = []
        for _ in range(5):
            n = 2000
            start = time.perf_counter()
            for _ in range(n):
                sample(index, horizon, gamma_powers, generator)
            rates.append(n / (time.perf_counter() - start))
        median = float(np.median(rates))
        print(f"sample H{horizon}: {median:.0f} batches/s ({1e6 / median:.1f} us/batch, median of 5)")


if __name__ == "__main__":
    main()
