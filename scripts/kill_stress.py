#!/usr/bin/env python3
"""Stress test of "nothing is lost": kill small training runs at random
moments, resume them, and check that each ends exactly as an uninterrupted
run (metrics.jsonl without its timing field, eval.jsonl, config.toml and
checkpoint.safetensors to the byte, no temporary file left).

    python3 scripts/kill_stress.py --runs 20                  # SIGKILL
    python3 scripts/kill_stress.py --runs 20 --signal INT     # Ctrl-C
    python3 scripts/kill_stress.py --runs 10 --set checkpoint_every=1

Each run is signalled once at a random moment of its first session and,
with probability 0.4, again in each later session (a resume killed too).
A run without config.toml yet starts again; one with it resumes. Uses only
the standard library and the built binary (`cargo build --release`).
Exit status 1 when any run differs.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A run of about two seconds that logs, evaluates and checkpoints often.
CONFIG = """\
dataset = "{data}"
steps = 300
batch_size = 32
log_every = 10
eval_every = 100
eval_episodes = 2
checkpoint_every = 20
threads = 1
[agent]
lr_decay_steps = 600
[agent.critic]
hidden = [32, 32]
[agent.diffusion.net]
hidden = [32, 32]
[agent.consistency.net]
hidden = [32, 32]
"""


def metrics_rows(path):
    """The rows of metrics.jsonl without steps_per_second (a timing)."""
    rows = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            row.pop("steps_per_second", None)
            rows.append(row)
    return rows


def read(path, binary=False):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def summary_of_run(path):
    """summary.json less what differs between any two sessions (timing, the
    folder, the kernels' name, where the last session started)."""
    with open(path) as f:
        summary = json.load(f)
    for key in ("seconds", "steps_per_second", "first_step", "run_dir", "matrix_kernels"):
        summary.pop(key, None)
    return summary


def differences(reference, run):
    """What differs between the finished run folder and the reference."""
    found = []
    for name, load in [
        ("metrics.jsonl", metrics_rows),
        ("eval.jsonl", read),
        ("config.toml", read),
        ("checkpoint.safetensors", lambda p: read(p, binary=True)),
        ("summary.json", summary_of_run),
    ]:
        path = os.path.join(run, name)
        if not os.path.exists(path):
            found.append(f"no {name}")
        elif load(path) != load(os.path.join(reference, name)):
            found.append(f"{name} differs")
    found += [f"left {n}" for n in os.listdir(run) if ".tmp-" in n]
    return found


def session(command, delay, sig):
    """Runs `command`, sending `sig` after `delay` seconds if it still runs;
    returns its exit status (negative: the signal that ended it) and
    whether the signal was sent."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sent = False
    if delay is not None:
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
            sent = True
    _, err = process.communicate()
    if process.returncode not in (0, 130, -signal.SIGKILL, -sig):
        sys.stderr.write(err.decode(errors="replace"))
    return process.returncode, sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--signal", default="KILL", help="KILL, INT, TERM or HUP")
    parser.add_argument("--max-delay", type=float, default=3.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/chunkql"))
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    sig = getattr(signal, "SIG" + args.signal.upper())
    random.seed(args.seed)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = args.keep or tempfile.mkdtemp(prefix="kill_stress-")
    os.makedirs(work, exist_ok=True)
    binary = [args.binary]
    data = os.path.join(work, "pendulum.npz")
    subprocess.run(binary + ["generate", "pendulum", "--episodes", "20", "--out", data],
                   check=True, stdout=subprocess.DEVNULL)
    config = os.path.join(work, "stress.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(data=data))
    overrides = [x for kv in args.set for x in ("--set", kv)]
    train = binary + ["train", "--config", config] + overrides + ["--out"]
    reference = os.path.join(work, "reference")
    shutil.rmtree(reference, ignore_errors=True)
    subprocess.run(train + [reference], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)

    signals, failed = 0, 0
    for i in range(args.runs):
        run = os.path.join(work, f"run-{i}")
        shutil.rmtree(run, ignore_errors=True)
        command, history = train + [run], []
        for attempt in range(12):
            hit = attempt == 0 or random.random() < 0.4
            delay = random.uniform(0, args.max_delay) if hit else None
            status, sent = session(command, delay, sig)
            history.append(status)
            signals += sent
            if status == 0:
                break
            if not sent:
                # An error no signal caused (a panic, a refused resume):
                # a failure even if a later try would get through.
                break
            if os.path.exists(os.path.join(run, "config.toml")):
                command = binary + ["train", "--resume", run]
            else:
                command = train + [run]
        if history[-1] == 0:
            problems = differences(reference, run)
        elif not sent:
            problems = [f"exit status {history[-1]} without a signal"]
        else:
            problems = ["never finished"]
        failed += bool(problems)
        print(f"run {i}: exit statuses {history}: {'; '.join(problems) or 'identical'}")
    print(f"{args.runs} runs, {signals} SIG{args.signal.upper()} at random moments "
          f"(up to {args.max_delay} s): {args.runs - failed} identical to the uninterrupted "
          f"run, {failed} not (work folder {work})")
    if not args.keep and failed == 0:
        shutil.rmtree(work)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
