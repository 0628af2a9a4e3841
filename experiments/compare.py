"""``rlnn compare`` and ``rlnn report``: several algorithms over several seeds, side by side.

Every (algo, seed) is an ordinary run, trained by its own ``rlnn train`` process; a thread pool
(``concurrent.futures``) keeps ``--workers`` of them going. A process per run means a run that crashes
or is killed fails alone, and Ctrl-C reaches every worker, each of which checkpoints and stops. All runs
sit under one ``runs/compare__{env}__{time}/``, so ``tensorboard --logdir`` on it overlays them, and the
report is made from their event files: ``rlnn report DIR`` remakes it at any time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from agents import ALGOS, UnknownAlgo
from agents.loop import run_name
from experiments.config import ConfigError, build


@dataclass
class Job:
    algo: str
    seed: int
    run_dir: str
    resume: bool = False


def parse_seeds(text: str) -> list[int]:
    """``5`` -> 0..4; ``0-9`` -> 0..9; ``1,4,7`` -> those."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",")]
        if "-" in text:
            lo, hi = (int(s) for s in text.split("-"))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        n = int(text)
        if n < 1:
            raise ValueError
        return list(range(n))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected a count (5), a range (0-9) or a list (1,4,7)") from None


def parse_workers(text: str) -> int:
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        n = int(text)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise ConfigError(f"--workers {text!r}: expected a positive number or auto") from None


def run_status(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _command(job: Job, spec: dict) -> list[str]:
    cmd = [sys.executable, "-m", "experiments.cli", "train", "--quiet"]
    if job.resume:
        return cmd + ["--resume", job.run_dir]
    cmd += ["--algo", job.algo, "--env", spec["env"], "--seed", str(job.seed), "--run-dir", job.run_dir]
    if spec.get("total_steps") is not None:
        cmd += ["--total-steps", str(spec["total_steps"])]
    for item in spec.get("sets", []):
        cmd += ["--set", item]
    return cmd


def run_job(job: Job, spec: dict, log_dir: str) -> tuple[Job, int, float]:
    name = os.path.basename(job.run_dir)
    t0 = time.perf_counter()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with open(os.path.join(log_dir, f"{name}.log"), "a") as log:
        proc = subprocess.run(_command(job, spec), stdout=log, stderr=subprocess.STDOUT, env=env)
    return job, proc.returncode, time.perf_counter() - t0


def job_for(algo: str, seed: int, run_dir: str) -> Job | None:
    """The job of one run: None if it finished, a resume if it stopped after a checkpoint, else a new run."""
    status = run_status(run_dir)
    if status is not None and status["status"] in ("done", "target_reached"):
        return None
    ckpts = os.path.join(run_dir, "checkpoints")
    return Job(algo, seed, run_dir, resume=bool(os.path.isdir(ckpts) and os.listdir(ckpts)))


def plan(parent: str, spec: dict) -> list[Job]:
    """The jobs still to do: new runs, and resumes of runs that stopped before their total."""
    jobs = []
    for algo in spec["algos"]:
        for seed in spec["seeds"]:
            job = job_for(algo, seed, os.path.join(parent, run_name(spec["env"], algo, seed, spec["time"])))
            if job is not None:
                jobs.append(job)
    return jobs


def run_compare(parent: str, spec: dict, workers: int, stream=None) -> int:
    stream = stream or sys.stdout
    log_dir = os.path.join(parent, "logs")
    os.makedirs(log_dir, exist_ok=True)
    jobs = plan(parent, spec)
    print(f"compare: {len(jobs)} run(s) to do in {parent} with {workers} worker(s)\n"
          f"watch: tensorboard --logdir {parent}", file=stream, flush=True)
    failed, interrupted = [], []
    pool = ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(run_job, job, spec, log_dir) for job in jobs]
    try:
        for fut in as_completed(futures):
            job, code, secs = fut.result()
            name = os.path.basename(job.run_dir)
            if code == 0:
                print(f"  done    {name} ({secs:.1f} s)", file=stream, flush=True)
            elif code == 130 or code == -signal.SIGINT:
                interrupted.append(name)
                print(f"  stopped {name}", file=stream, flush=True)
            else:
                failed.append(name)
                print(f"  FAILED  {name} (exit {code}; see {os.path.join(log_dir, name + '.log')})", file=stream,
                      flush=True)
    except KeyboardInterrupt:
        # The workers got the same SIGINT (one process group): each checkpoints and exits.
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=True)
        print(f"compare interrupted; finish it with: rlnn compare --resume {parent}", file=stream)
        return 130
    pool.shutdown(wait=True)
    if failed or interrupted:
        print(f"compare: {len(failed)} failed, {len(interrupted)} stopped; the other runs are intact. "
              f"Finish with: rlnn compare --resume {parent}", file=stream)
    from experiments.report import find_runs, report

    if any(os.path.exists(os.path.join(d, "result.json")) for d in find_runs(parent)):
        report(parent, stream=stream)
    return 1 if failed else (130 if interrupted else 0)


def cmd_compare(args: argparse.Namespace) -> int:
    if args.resume:
        spec_path = os.path.join(args.resume, "compare.json")
        if not os.path.exists(spec_path):
            raise ConfigError(f"{args.resume}: not a compare directory (no compare.json)")
        with open(spec_path) as f:
            spec = json.load(f)
        return run_compare(os.path.abspath(args.resume), spec, parse_workers(args.workers))
    algos = list(dict.fromkeys(a.strip() for a in args.algos.split(",") if a.strip()))
    for algo in algos:
        if algo not in ALGOS:
            raise UnknownAlgo(f"unknown algorithm {algo!r} in --algos: choose from {', '.join(ALGOS)}")
    seeds = parse_seeds(args.seeds)
    workers = parse_workers(args.workers)
    for algo in algos:  # check every config before starting anything
        build(algo, args.env, None, args.set, {"total_steps": args.total_steps})
    stamp = int(time.time())
    parent = os.path.abspath(os.path.join(args.logdir, f"compare__{args.env.replace('/', '-')}__{stamp}"))
    os.makedirs(parent, exist_ok=True)
    spec = {"env": args.env, "algos": algos, "seeds": seeds, "total_steps": args.total_steps,
            "sets": args.set, "time": stamp}
    with open(os.path.join(parent, "compare.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return run_compare(parent, spec, workers)


def cmd_report(args: argparse.Namespace) -> int:
    from experiments.report import report

    try:
        report(args.dir, threshold=args.threshold)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return 0


def register(sub) -> None:
    c = sub.add_parser("compare", help="several algorithms over several seeds, with a report")
    c.add_argument("--env", default="CartPole-v1")
    c.add_argument("--algos", default="pg,dqn", help="comma-separated, e.g. pg,dqn")
    c.add_argument("--seeds", default="3", help="a count (5), a range (0-9) or a list (1,4,7)")
    c.add_argument("--total-steps", type=int, help="budget per run (default: each preset's)")
    c.add_argument("--workers", default="auto", help="parallel runs (auto = number of cores)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. dqn.lr=1e-3 (one algorithm), run.eval_every=2000 (all)")
    c.add_argument("--logdir", default="runs")
    c.add_argument("--resume", metavar="DIR", help="finish the missing runs of a compare directory")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("report", help="summary table and plots of a compare directory, from its event files")
    r.add_argument("dir")
    r.add_argument("--threshold", type=float, help="return that counts as solved (default: the env's registry threshold)")
    r.set_defaults(func=cmd_report)
