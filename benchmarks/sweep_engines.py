"""Wall time of one small sweep on 1 and 2 local worker processes and on a local Ray instance.

    python benchmarks/sweep_engines.py                    # 8 trials: sizes x l2=0,1e-4, 20 epochs
    python benchmarks/sweep_engines.py --reps=2 --max_epochs=40

Each configuration runs `tbreg sweep` as a user would (a fresh process, a fresh log dir, the
mnist1d cache warm), side by side in one run and in rotating order per repetition, so machine
load hits all alike. Reported: the median wall time (start of the command to its exit: TensorFlow
import, worker start-up and Ray's start included), the ratio to `--jobs=1`, and whether the trees
agree with the first configuration's (same run dirs, best validation data loss within 1e-4).
A ratio, never a timed test.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGS = {
    "local, 1 worker": ["--engine=local", "--jobs=1"],
    "local, 2 workers": ["--engine=local", "--jobs=2"],
    "Ray (local instance), 2 CPUs": ["--engine=ray", "--jobs=2"],
}


def best_values(logdir: str) -> dict:
    from tbreg import logtree

    out = {}
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if logtree.RUN_JSON in filenames:
            out[os.path.relpath(dirpath, logdir)] = logtree.read_run_json(dirpath).get("best_value")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--max_epochs", type=int, default=20)
    parser.add_argument("--models", default="tiny,small,medium,large")
    parser.add_argument("--grid", default="l2=0,1e-4")
    args = parser.parse_args()
    sweep = [
        "--families=sizes",
        f"--models={args.models}",
        "--grid",
        args.grid,
        f"--max_epochs={args.max_epochs}",
        f"--patience={args.max_epochs}",
        "--quiet",
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tbreg.cli",
            "sweep",
            f"--logdir={tempfile.mkdtemp()}",
            "--models=tiny",
            "--max_epochs=1",
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )  # mnist1d generated and cached
    times = {name: [] for name in CONFIGS}
    trees = {}
    names = list(CONFIGS)
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            logdir = tempfile.mkdtemp(prefix="sweep-bench-")
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "tbreg.cli", "sweep", f"--logdir={logdir}", *sweep, *CONFIGS[name]],
                capture_output=True,
                text=True,
            )
            times[name].append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(f"{name}: tbreg sweep exited {proc.returncode}:\n{proc.stderr[-2000:]}")
            trees.setdefault(name, best_values(logdir))
            print(f"rep {rep + 1}: {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    reference = statistics.median(times[names[0]])
    first = trees[names[0]]
    print(
        f"\n{len(first)} trials ({args.models} x {args.grid}, {args.max_epochs} epochs, mnist1d); "
        f"{platform.machine()}, {os.cpu_count()} CPUs; median of {args.reps}\n"
    )
    print("| engine | wall s | vs 1 local worker | same tree |")
    print("|---|---|---|---|")
    for name in names:
        wall = statistics.median(times[name])
        tree = trees[name]
        same = tree.keys() == first.keys() and all(abs((tree[k] or 0) - (first[k] or 0)) <= 1e-4 for k in tree)
        print(f"| {name} | {wall:.1f} | {reference / wall:.2f}× faster | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
