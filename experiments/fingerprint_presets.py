"""Does a refactor change what the presets compute? A fingerprint per preset, to compare across checkouts.

    python experiments/fingerprint_presets.py [--steps 3000] [--preset cartpole_dqn ...]

Each preset trains a few thousand steps (seed 0, no evaluations) and is hashed: every logged ``losses/*``
value and training episode return (``progress.csv``, which writes floats exactly) and the final
parameters of every network in the checkpoint. Run it in two checkouts on the same machine and compare
the lines: equal hashes mean bit-identical runs. The float sums depend on NumPy's BLAS kernels, so
hashes from different machines or NumPy builds are not comparable.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402,F401  (one BLAS thread)
import numpy as np  # noqa: E402

from agents import config  # noqa: E402
from agents.loop import train  # noqa: E402
from agents.rundir import RunDir  # noqa: E402
from rlnn.checkpoint import flatten  # noqa: E402

# Rollouts shortened where a preset's first update would come after the budget.
SHORTER = {"lunarlander_ppo": {"agent.rollout_steps": 32}, "lunarlandercontinuous_ppo": {"agent.rollout_steps": 32}}


def fingerprint(algo: str, env_id: str, sets: dict, total_steps: int, logdir: str) -> str:
    """sha256 of a run's logged losses and episode returns and its final network parameters."""
    cfg = config.build(algo, env_id, sets={**sets, "run.eval_episodes": 0, "run.log_every": 200},
                       overrides={"total_steps": total_steps, "logdir": logdir})
    result = train(cfg.algo, cfg.run, cfg.agent, console=False)
    digest = hashlib.sha256()
    with open(os.path.join(result.run_dir, "progress.csv")) as f:
        for row in csv.DictReader(f):
            if row["tag"].startswith("losses/") or row["tag"] == "charts/episodic_return":
                digest.update(f"{row['step']},{row['tag']},{row['value']};".encode())
    _, state = RunDir(result.run_dir).load_checkpoint()
    params = flatten(state["agent"])
    for key in sorted(params):
        if key.endswith("/flat_params"):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(params[key]).tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3_000, help="env steps per preset (default 3000)")
    p.add_argument("--preset", nargs="+", help="preset names (default: every preset; rlnn list)")
    args = p.parse_args(argv)
    presets = config.presets()
    names = args.preset or sorted(presets)
    unknown = [n for n in names if n not in presets]
    if unknown:
        p.error(f"unknown preset {unknown[0]!r}: allowed are {', '.join(sorted(presets))}")
    for name in names:
        preset = presets[name]
        digest = fingerprint(preset["algo"], preset["run"]["env_id"], SHORTER.get(name, {}), args.steps,
                             tempfile.mkdtemp(prefix="fingerprint_"))
        print(f"{name:28s} {args.steps:>7,d} steps  {digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
