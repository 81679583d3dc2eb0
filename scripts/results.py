"""The results sweep of docs/results.md: every (env, agent, H, target, seed)
run, two at a time with one libtorch thread each (2 cores), then the table.

    python3 scripts/results.py run        # all runs missing from runs/results (hours on 2 cores)
    python3 scripts/results.py table      # aggregate runs/results/*/summary.json -> stdout (markdown)
    python3 scripts/results.py run cpql-h4-recon   # only the named configurations (any of `run`, `table`)
    python3 scripts/results.py check      # the interval arithmetic against hand-worked numbers (`make test`)
    python3 scripts/results.py run dql-h1 --steps 10000 --envs pendulum,pointmaze-medium   # another budget, some tasks
    python3 scripts/results.py execution dql-h4-smdp --envs pointmaze-medium   # the runs re-evaluated under each way of executing chunks

Options (for `run` and `table`): `--steps N` sets the number of updates
(default 3000; any other budget lives in runs/results-<N>/, so budgets never
mix), `--envs E1,E2` restricts the tasks.

Budget (2 cores): default networks (3 x 256 Mish, LayerNorm critic), batch
256, 3000 updates, 10 evaluation episodes at the end; datasets: 100 episodes
of the `medium` behaviour policy (seed 0). Runs that already have a
summary.json are skipped, so the sweep can be stopped and restarted.
"""

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "chunkql"
ENVS = ["pendulum", "pointmaze-umaze", "pointmaze-medium", "pointmaze-large"]
SEEDS = [0, 1, 2]
STEPS = 3000


def out_dir(steps):
    """runs/results for the table's budget, runs/results-<steps> for others."""
    return ROOT / "runs" / ("results" if steps == STEPS else f"results-{steps}")


def common(steps):
    return [
        "--steps", str(steps),
        "--set", "threads=1",
        "--set", "eval_every=0",
        "--set", "eval_episodes=10",
        "--set", f"checkpoint_every={steps}",
        "--set", "log_every=100",
    ]


def configs():
    """(name, extra args) of every configuration per env."""
    out = []
    # The cpql-* rows of the first sweep ran with the consistency-training
    # loss, the default until 2026-12-02; the cpql-*-recon rows with the
    # weighted reconstruction loss the released CPQL code optimises (the
    # default since). Both are pinned here so that every row stays what it was.
    loss = {"dql": [], "cpql": ["--set", "agent.consistency.loss=consistency"]}
    for agent in ["dql", "cpql"]:
        out.append((f"{agent}-h1", ["--agent", agent, "--horizon", "1", *loss[agent]]))
        for h in [4, 8]:
            out.append((f"{agent}-h{h}-smdp", ["--agent", agent, "--horizon", str(h), *loss[agent]]))
            out.append((f"{agent}-h{h}-onestep", ["--agent", agent, "--horizon", str(h), "--set", "agent.target=one_step", *loss[agent]]))
    out.append(("bc-h4", ["--agent", "dql", "--horizon", "4", "--set", "agent.eta=0"]))
    recon = ["--set", "agent.consistency.loss=reconstruction"]
    for h in [1, 4, 8]:
        out.append((f"cpql-h{h}-recon", ["--agent", "cpql", "--horizon", str(h), *recon]))
    return out


def selected(names):
    """configs() restricted to `names` (all when empty); unknown names are an error."""
    known = {name for name, _ in configs()}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; known: {sorted(known)}")
    return [(name, extra) for name, extra in configs() if not names or name in names]


def jobs(names, envs, steps):
    for env in envs:
        for name, extra in selected(names):
            for seed in SEEDS:
                run = out_dir(steps) / env / f"{name}-s{seed}"
                yield run, [str(BIN), "train", "--env", env, "--seed", str(seed), "--out", str(run), *common(steps), *extra]


def failed_marker(run):
    """Beside a run that ended in an error (a diverged run, say): its exit
    status. Such a run is not started again (it would fail the same way);
    the table counts it. Delete the file to try again."""
    return run.parent / f"{run.name}.failed"


def run_one(job):
    run, cmd = job
    if (run / "summary.json").exists():
        return
    if failed_marker(run).exists():
        print(f"skip {run.relative_to(ROOT)}: it failed before ({failed_marker(run).name}; delete it to retry)", flush=True)
        return
    if run.exists():  # an interrupted run: start it again from scratch
        subprocess.run(["rm", "-rf", str(run)], check=True)
    run.parent.mkdir(parents=True, exist_ok=True)
    log = run.parent / f"{run.name}.log"
    with open(log, "w") as f:
        status = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    # 130: stopped by Ctrl-C (and a negative status, killed by a signal):
    # interrupted, not failed, so the next `run` starts it again.
    if status not in (0, 130) and status > 0:
        failed_marker(run).write_text(f"exit status {status}; see {log.name}\n")
        print(f"FAILED {run.relative_to(ROOT)} (exit status {status}; see {log.relative_to(ROOT)})", flush=True)
        return
    print(f"done {run.relative_to(ROOT)}", flush=True)


def ensure_data(envs):
    """Generates each env's default dataset once, before the parallel runs."""
    for env in envs:
        path = ROOT / "data" / f"{env}-medium.npz"
        if not path.exists():
            subprocess.run([str(BIN), "generate", env, "--level", "medium", "--episodes", "100", "--out", str(path)], cwd=ROOT, check=True)


T95_TABLE = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
]


def t95(df):
    """The 0.975 quantile of Student's t with df degrees of freedom, as
    src/eval/stats.rs computes it: a table to df = 30, then the Cornish-Fisher
    expansion (Abramowitz & Stegun 26.7.5)."""
    if df < 1:
        return float("inf")
    if df <= len(T95_TABLE):
        return T95_TABLE[df - 1]
    z = 1.959963984540054
    z2, v = z * z, float(df)
    g1 = z * (z2 + 1) / 4
    g2 = z * ((5 * z2 + 16) * z2 + 3) / 96
    g3 = z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384
    g4 = z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160
    return z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v


def summarize(values):
    """mean +- 95% t half-width over seeds."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


def check():
    """The table's intervals against numbers worked by hand."""
    # Student's t 0.975 quantiles (tables; 31 and 120 from the t distribution).
    for df, want in [(1, 12.706), (2, 4.303), (6, 2.447), (30, 2.042), (31, 2.0395), (120, 1.9799)]:
        assert abs(t95(df) - want) < 5e-4, (df, t95(df), want)
    assert t95(0) == float("inf")
    # Seeds scoring 1, 2, 3: mean 2, sample sd 1, half-width 4.303 / sqrt(3).
    mean, half = summarize([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(half - 4.303 / math.sqrt(3)) < 1e-12, (mean, half)
    mean, half = summarize([5.0])
    assert mean == 5.0 and math.isnan(half)
    check_table()
    check_execution()
    print("scripts/results.py: interval arithmetic, the table and the execution table checked")


def check_table():
    """table() over summary.json files made here: the score and success
    fields it reads, its rows worked by hand, and configurations with
    missing seeds."""
    import tempfile

    def summary(score, success=None):
        final = {"normalized_score": {"mean": score, "low": None, "high": None},
                 "mean_return": {"mean": -1.0e6, "low": None, "high": None}}
        if success is not None:
            final["success_rate"] = {"mean": success, "low": 0.0, "high": 1.0}
        return {"steps": STEPS, "final_eval": final}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def write(env, name, seed, data):
            path = out / env / f"{name}-s{seed}" / "summary.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(data))

        for seed, score in zip(SEEDS, [10.0, 20.0, 30.0]):
            write("pendulum", "dql-h1", seed, summary(score))
        write("pendulum", "bc-h4", 1, summary(7.0))
        for seed, (score, success) in zip(SEEDS, [(50.0, 0.5), (60.0, 0.7), (70.0, 0.9)]):
            write("pointmaze-umaze", "dql-h1", seed, summary(score, success))
        # bc-h4 on the maze: one seed done, one failed (its marker), one not run.
        write("pointmaze-umaze", "bc-h4", 0, summary(9.0, 0.1))
        (out / "pointmaze-umaze" / "bc-h4-s1.failed").write_text("exit status 1\n")
        text = table(["dql-h1", "bc-h4"], ENVS, out).split("\n")
        only = table(["dql-h1"], ["pointmaze-umaze"], out).split("\n")
    # 10, 20, 30: mean 20, sd 10, half-width 4.303 * 10 / sqrt(3) = 24.84.
    assert "| dql-h1 | 20.0 ± 24.8 | 10.0, 20.0, 30.0 |" in text, text
    assert "| bc-h4 | 7.0 (1 of 3 seeds) | 7.0 |" in text, text
    # Success rates 0.5, 0.7, 0.9: mean 0.70.
    assert "| dql-h1 | 60.0 ± 24.8 | 50.0, 60.0, 70.0 | 0.70 |" in text, text
    assert "| bc-h4 | (not run) | | |" in text, text
    assert "| bc-h4 | 9.0 (1 of 3 seeds, 1 failed) | 9.0 | 0.10 |" in text, text
    assert sum(line.startswith("### ") for line in text) == len(ENVS), text
    # --envs: only the tasks asked for.
    assert [line for line in only if line.startswith("### ")] == ["### pointmaze-umaze"], only
    # Budgets other than the table's live in a folder of their own.
    assert out_dir(STEPS).name == "results" and out_dir(10000).name == "results-10000"


def check_execution():
    """execution() over evaluations saved beside fake runs (so no binary
    runs): one row per configuration and way of executing, its scores and
    success rates worked by hand, runs without a summary left out."""
    import tempfile

    ways = {"chunk": (4, None), "step": (1, None), "ens0.01": (1, 0.01), "ens1": (1, 1.0)}

    def report(key, score, success, step=3000):
        execute, ensemble = ways[key]
        return {"step": step, "report": {
            "normalized_score": {"mean": score}, "success_rate": {"mean": success},
            "execute": execute, "ensemble": ensemble, "episodes": [{}] * EXECUTION_EPISODES}}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for seed in SEEDS:
            run = out / "pointmaze-umaze" / f"dql-h4-smdp-s{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text('{"steps": 3000}')
            (run / "config.toml").write_text("steps = 3000\nhorizon = 4\n")
            for k, (_, key, _) in enumerate(EXECUTION):
                # Way k scores 10 k + 10 seed + 5, success 0.1 k + 0.1 seed.
                saved = run / f"exec-{key}-e{EXECUTION_EPISODES}.json"
                saved.write_text(json.dumps(report(key, 10.0 * k + 10.0 * seed + 5.0, 0.1 * k + 0.1 * seed)))
        # A cache is this way's evaluation of the final checkpoint, or none:
        # another update, way, H or episode count is made again.
        run = out / "pointmaze-umaze" / "dql-h4-smdp-s0"
        path = run / f"exec-step-e{EXECUTION_EPISODES}.json"
        assert cached(run, "step", path) is not None
        for stale in [report("step", 1.0, 0.0, step=2000), report("chunk", 1.0, 0.0),
                      report("ens1", 1.0, 0.0)]:
            assert cached(run, "step", run / "stale.json") is None
            (run / "stale.json").write_text(json.dumps(stale))
            assert cached(run, "step", run / "stale.json") is None, stale
        assert cached(run, "chunk", run / f"exec-chunk-e{EXECUTION_EPISODES}.json") is not None
        (run / "config.toml").write_text("horizon = 8\n")
        assert cached(run, "chunk", run / f"exec-chunk-e{EXECUTION_EPISODES}.json") is None
        (run / "config.toml").write_text("horizon = 4\n")
        (run / "torn.json").write_text('{"step": 30')
        assert cached(run, "step", run / "torn.json") is None
        # A run folder that never finished (no summary.json) is left out.
        (out / "pointmaze-umaze" / "dql-h8-smdp-s0").mkdir()
        text = execution(["dql-h4-smdp", "dql-h8-smdp"], ["pendulum", "pointmaze-umaze"], out).split("\n")
    rows = [line for line in text if line.startswith("| dql")]
    assert len(rows) == len(EXECUTION), text
    # Way 0: seeds score 5, 15, 25: mean 15, sd 10, half-width 24.84;
    # success 0.0, 0.1, 0.2: mean 0.10.
    assert rows[0] == f"| dql-h4-smdp | {EXECUTION[0][0]} | 15.0 ± 24.8 | 5.0, 15.0, 25.0 | 0.10 |", rows
    # Way 3: 35, 45, 55; success 0.3, 0.4, 0.5.
    assert rows[3] == f"| dql-h4-smdp | {EXECUTION[3][0]} | 45.0 ± 24.8 | 35.0, 45.0, 55.0 | 0.40 |", rows
    # Only tasks with runs get a section.
    assert [line for line in text if line.startswith("### ")] == [
        f"### pointmaze-umaze: {EXECUTION_EPISODES} episodes per run"
    ], text


def table(names, envs, out):
    """The markdown table of the runs under `out` for `envs`; a
    configuration with fewer seeds than SEEDS says how many it has."""
    lines = []
    for env in envs:
        lines.append(f"\n### {env}\n")
        has_success = env.startswith("pointmaze")
        header = "| config | normalised score (mean ± 95% CI over seeds) | per-seed scores |"
        if has_success:
            header += " success rate |"
        lines.append(header)
        lines.append("|---|---|---|" + ("---|" if has_success else ""))
        for name, _ in selected(names):
            scores, successes, failed = [], [], 0
            for seed in SEEDS:
                path = out / env / f"{name}-s{seed}" / "summary.json"
                if not path.exists():
                    failed += failed_marker(path.parent).exists()
                    continue
                final = json.loads(path.read_text())["final_eval"]
                scores.append(final["normalized_score"]["mean"])
                if final.get("success_rate"):
                    successes.append(final["success_rate"]["mean"])
            failures = f", {failed} failed" if failed else ""
            if not scores:
                lines.append(f"| {name} | (not run{failures}) | |" + (" |" if has_success else ""))
                continue
            mean, half = summarize(scores)
            cell = f"{mean:.1f} ± {half:.1f}" if len(scores) > 1 else f"{mean:.1f}"
            if len(scores) < len(SEEDS):
                cell += f" ({len(scores)} of {len(SEEDS)} seeds{failures})"
            row = f"| {name} | {cell} | {', '.join(f'{s:.1f}' for s in scores)} |"
            if has_success:
                row += f" {sum(successes) / len(successes):.2f} |"
            lines.append(row)
    return "\n".join(lines)


# `execution`: ways of executing a run's chunks, as `chunkql eval` options.
EXECUTION = [
    ("whole chunks (execute H)", "chunk", ["--execute", "0"]),
    ("first action, replan (execute 1)", "step", ["--execute", "1"]),
    ("temporal ensemble, m = 0.01", "ens0.01", ["--ensemble", "0.01"]),
    ("temporal ensemble, m = 1", "ens1", ["--ensemble", "1"]),
]
EXECUTION_EPISODES = 50


def cached(run, key, path):
    """The report saved at `path` if it is this way's evaluation of the
    run's final checkpoint (its update, its H, EXECUTION_EPISODES
    episodes); None otherwise (then it is made again)."""
    import tomllib

    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        report = saved["report"]
        steps = json.loads((run / "summary.json").read_text())["steps"]
        horizon = tomllib.loads((run / "config.toml").read_text())["horizon"]
    except (ValueError, KeyError, OSError):
        return None
    execute, ensemble = {
        "chunk": (horizon, None), "step": (1, None), "ens0.01": (1, 0.01), "ens1": (1, 1.0),
    }[key]
    fits = (saved.get("step") == steps and report.get("execute") == execute
            and report.get("ensemble") == ensemble
            and len(report.get("episodes", [])) == EXECUTION_EPISODES)
    return report if fits else None


def evaluate_one(job):
    """One run evaluated one way: `chunkql eval --json`, kept beside the run
    as exec-<mode>-e<episodes>.json (reused while it is the evaluation of
    the run's final checkpoint in that way)."""
    run, key, options = job
    path = run / f"exec-{key}-e{EXECUTION_EPISODES}.json"
    report = cached(run, key, path)
    if report is None:
        out = subprocess.run(
            [str(BIN), "eval", str(run), "--json", "--episodes", str(EXECUTION_EPISODES), *options],
            check=True, capture_output=True, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        ).stdout
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(out)
        tmp.replace(path)  # whole or not at all
        report = json.loads(out)["report"]
    return report


def execution(names, envs, out):
    """Each finished run re-evaluated on EXECUTION_EPISODES episodes (its
    own evaluation seed) under each way of EXECUTION; the markdown table
    of the normalised score's mean over seeds with its 95% interval."""
    runs = [
        out / env / f"{name}-s{seed}"
        for env in envs for name, _ in selected(names) for seed in SEEDS
        if (out / env / f"{name}-s{seed}" / "summary.json").exists()
    ]
    jobs = [(run, key, options) for run in runs for _, key, options in EXECUTION]
    with ThreadPoolExecutor(max_workers=int(os.environ.get("JOBS", "2"))) as pool:
        reports = dict(zip([(run, key) for run, key, _ in jobs], pool.map(evaluate_one, jobs)))
    lines = []
    for env in envs:
        env_runs = [r for r in runs if r.parent.name == env]
        if not env_runs:
            continue
        has_success = env.startswith("pointmaze")
        lines.append(f"\n### {env}: {EXECUTION_EPISODES} episodes per run\n")
        lines.append("| config | execution | normalised score (mean ± 95% CI over seeds) | per-seed scores |"
                     + (" success rate |" if has_success else ""))
        lines.append("|---|---|---|---|" + ("---|" if has_success else ""))
        for name, _ in selected(names):
            config_runs = [r for r in env_runs if r.name.rsplit("-s", 1)[0] == name]
            if not config_runs:
                continue
            for label, key, _ in EXECUTION:
                finals = [reports[(run, key)] for run in config_runs]
                scores = [f["normalized_score"]["mean"] for f in finals]
                mean, half = summarize(scores)
                cell = f"{mean:.1f} ± {half:.1f}" if len(scores) > 1 else f"{mean:.1f}"
                row = f"| {name} | {label} | {cell} | {', '.join(f'{x:.1f}' for x in scores)} |"
                if has_success:
                    rate = sum(f["success_rate"]["mean"] for f in finals) / len(finals)
                    row += f" {rate:.2f} |"
                lines.append(row)
    return "\n".join(lines)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "table", "execution", "check"])
    parser.add_argument("configs", nargs="*", help="configurations (default: all)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"updates per run (default {STEPS})")
    parser.add_argument("--envs", default=",".join(ENVS), help=f"tasks, comma-separated (default: all of {','.join(ENVS)})")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    args.envs = args.envs.split(",")
    unknown = [e for e in args.envs if e not in ENVS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; known: {ENVS}")
    if args.command == "check":
        return check()
    if args.command == "run":
        if not BIN.exists():
            sys.exit(f"{BIN} missing: run `cargo build --release` first")
        selected(args.configs)  # unknown names fail before any run starts
        ensure_data(args.envs)
        with ThreadPoolExecutor(max_workers=int(os.environ.get("JOBS", "2"))) as pool:
            list(pool.map(run_one, jobs(args.configs, args.envs, args.steps)))
    elif args.command == "execution":
        if not BIN.exists():
            sys.exit(f"{BIN} missing: run `cargo build --release` first")
        selected(args.configs)
        print(execution(args.configs, args.envs, out_dir(args.steps)))
    else:
        print(table(args.configs, args.envs, out_dir(args.steps)))


if __name__ == "__main__":
    main()
