"""The suite (``rlnn compare --envs``) on the local executor and on a local Ray instance, for the same seeds:
what Ray costs over the local processes, whether both give the same runs, and whether a Ray suite killed
with ``kill -9`` and resumed gives them too.

    python experiments/bench_suite.py          # CartPole-v1,Acrobot-v1 × pg,dqn × 2 seeds × 20,000 steps, 2 at once
    python experiments/bench_suite.py --envs CartPole-v1 --algos pg --seeds 3 --total-steps 5000 --kill-after 8

Three sessions of ``rlnn compare``, each a fresh process from a temporary log directory, one after the
other: ``--backend local``, ``--backend ray``, and ``--backend ray`` killed (``kill -9`` of the command
alone) ``--kill-after`` seconds in and then ``--resume``d on Ray. The table shows each one's wall-clock
time, the part spent starting Ray, the sum of the runs' own training seconds (from their event files) and
whether its run directories, per-run numbers (solved, steps to solve, final eval, AUC: ``{env}/runs.csv``)
and benchmark.png are those of the local session.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SAME = ("run", "algo", "seed", "solved", "steps_to_solve", "final_eval", "auc", "total_steps")


def compare_cmd(args, logdir: str, backend: str) -> list[str]:
    return [sys.executable, "-m", "experiments.cli", "compare", "--envs", args.envs, "--algos", args.algos,
            "--seeds", str(args.seeds), "--total-steps", str(args.total_steps), "--workers", str(args.workers),
            "--backend", backend, "--logdir", logdir]


def _suite_dir(logdir: str) -> str:
    (name,) = os.listdir(logdir)
    return os.path.join(logdir, name)


def _run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[3:6])} ... failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return wall, proc.stdout


def _ray_init(out: str) -> float:
    m = re.search(r"started in ([\d.]+) s", out)
    return float(m.group(1)) if m else 0.0


def runs_of(suite: str) -> dict[str, dict]:
    """Per run (its name without the time stamp): the numbers that must not depend on the executor."""
    out = {}
    for env in sorted(os.listdir(suite)):
        path = os.path.join(suite, env, "runs.csv")
        if os.path.isfile(path):
            with open(path) as f:
                for row in csv.DictReader(f):
                    out[row["run"].rsplit("__", 1)[0]] = {k: row[k] for k in SAME if k != "run"}
    return out


def train_seconds(suite: str) -> float:
    from experiments.compare import read_spec
    from experiments.report import training_seconds

    return sum(training_seconds(rd.path) for rd in read_spec(suite).run_dirs(suite))


def _locked(path: str) -> bool:
    """Whether a run directory's writer still holds its lock (``agents.rundir``: an flock)."""
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def killed_and_resumed(args, logdir: str) -> dict:
    """A Ray session killed with SIGKILL ``kill_after`` s in (its runs get SIGTERM and checkpoint), then resumed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(compare_cmd(args, logdir, "ray"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    time.sleep(args.kill_after)
    proc.kill()
    first = proc.communicate()[0]
    killed_at = time.perf_counter() - t0
    suite = _suite_dir(logdir)
    done_before = sum(1 for line in first.splitlines() if line.startswith("  done "))
    deadline = time.monotonic() + 60     # the runs end on their own after their SIGTERM: wait for their locks
    while time.monotonic() < deadline and any(_locked(os.path.join(d, ".lock")) for d, _, files in os.walk(suite)
                                              if ".lock" in files):
        time.sleep(0.2)
    wall, out = _run([sys.executable, "-m", "experiments.cli", "compare", "--resume", suite, "--backend", "ray",
                      "--workers", str(args.workers)])
    m = re.search(r"compare: (\d+) run\(s\) to do", out)
    return {"killed_at": killed_at, "done_before": done_before, "to_do": int(m.group(1)) if m else None,
            "wall": killed_at + wall, "init": _ray_init(first) + _ray_init(out), "suite": suite}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="CartPole-v1,Acrobot-v1", help="the suite's envs (default CartPole-v1,Acrobot-v1)")
    p.add_argument("--algos", default="pg,dqn", help="its algorithms (default pg,dqn)")
    p.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 (default 2)")
    p.add_argument("--total-steps", type=int, default=20_000, help="budget per run (default 20000)")
    p.add_argument("--workers", type=int, default=2, help="runs at once on both backends (default 2)")
    p.add_argument("--kill-after", type=float, default=25.0, help="seconds into the third session when it is "
                   "killed (default 25)")
    p.add_argument("--keep", action="store_true", help="keep the suite directories (default: removed)")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench_suite_")
    try:
        rows = []
        for backend in ("local", "ray"):
            logdir = os.path.join(tmp, backend)
            wall, out = _run(compare_cmd(args, logdir, backend))
            rows.append({"session": backend, "wall": wall, "init": _ray_init(out), "suite": _suite_dir(logdir)})
        kill = killed_and_resumed(args, os.path.join(tmp, "ray_killed"))
        rows.append({"session": f"ray, kill -9 at {kill['killed_at']:.0f} s ({kill['done_before']} run(s) done), "
                                f"--resume ({kill['to_do']} to do)", **kill})
        local = rows[0]
        reference = runs_of(local["suite"])
        runs = len(reference)
        print(f"\nsuite {args.envs} × {args.algos} × {args.seeds} seed(s) × {args.total_steps:,} steps = {runs} runs, "
              f"{args.workers} at once, {os.cpu_count()} cores\n")
        print("| session | wall-clock s | Ray start s | runs' training s (sum) | overhead vs local | same runs, "
              "per-run numbers and benchmark.png as local |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            same = runs_of(r["suite"]) == reference and filecmp.cmp(
                os.path.join(r["suite"], "benchmark.png"), os.path.join(local["suite"], "benchmark.png"), shallow=False)
            over = "–" if r is local else f"+{r['wall'] - local['wall']:.1f} s ({r['wall'] / local['wall']:.2f}×)"
            print(f"| {r['session']} | {r['wall']:.1f} | {r['init']:.1f} | {train_seconds(r['suite']):.1f} | {over} "
                  f"| {'–' if r is local else ('yes' if same else 'NO')} |")
        if args.keep:
            print(f"\nsuite directories kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import experiments  # noqa: F401  (one BLAS thread)
    sys.exit(main())
