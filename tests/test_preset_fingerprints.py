"""The presets that moved from ``pg`` to ``ppo`` compute what they computed before the move, bit for bit.

PPO once lived inside the ``pg`` agent (behind ``clip_coef > 0``); its presets now belong to ``ppo``, and
``pg`` is REINFORCE only. Each case trains a few thousand steps of a preset and hashes what the run logged
(every ``losses/*`` point and the episode returns, as TensorBoard stores them) and the final network
parameters. The expected hashes were recorded by this same ``fingerprint`` function run against the code
before the move (``algo = "pg"`` with the PPO presets of then). The float sums depend on NumPy's BLAS
kernels: on another CPU or NumPy build, record them again from that code (``python
tests/test_preset_fingerprints.py pg``) before trusting a mismatch.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
from conftest import read_scalars

from agents import config
from agents.loop import train
from agents.rundir import RunDir
from rlnn.checkpoint import flatten

# (algo now, env, --set, total steps): LunarLander's rollout is shortened so that updates happen.
CASES = [
    ("ppo", "CartPole-v1", {}, 3_000),
    ("ppo", "LunarLander-v3", {"agent.rollout_steps": 32}, 3_000),
    ("ppo", "MountainCar-v0", {}, 3_000),
    ("pg", "Acrobot-v1", {}, 3_000),
    ("pg", "Acrobot-v1", {"agent.baseline": "mean"}, 3_000),      # no critic: unfinished episodes carried over
]

EXPECTED = [
    "985f5b3dd15914d52da52736c0775d5046761d14f3a06d8bbcb175fb41bd86f3",
    "95ad4e984f08cba2c0034888b41ca85dba2df9912399861dfbdedb423c61ea4a",
    "4e414e75ba8ec956ee8fab23d5f0721477b76f129440d81c7b7ea808645dbf2b",
    "e77000cce9e6e39bb2212c06d2a67e918507fd0555eeb917493776e83481506c",
    "0b4f6c3f373475a39aa639b3afc9ce4b09c502e3fe6c41500d4371b7e2936f7e",
]


def fingerprint(algo: str, env_id: str, sets: dict, total_steps: int, logdir: str) -> str:
    """sha256 of a preset's logged losses and episode returns and its final network parameters."""
    cfg = config.build(algo, env_id, sets={**sets, "run.eval_episodes": 0, "run.log_every": 200},
                       overrides={"total_steps": total_steps, "logdir": logdir})
    result = train(cfg.algo, cfg.run, cfg.agent, console=False)
    digest = hashlib.sha256()
    scalars = read_scalars(result.run_dir)
    for tag in sorted(scalars):
        if tag.startswith("losses/") or tag == "charts/episodic_return":
            digest.update(tag.encode())
            digest.update(np.asarray(scalars[tag], np.float64).tobytes())
    _, state = RunDir(result.run_dir).load_checkpoint()
    params = flatten(state["agent"])
    for key in sorted(params):
        if key in ("policy/flat_params", "value/flat_params"):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(params[key]).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_moved_presets_compute_what_they_computed_before(case, tmp_path):
    algo, env_id, sets, total_steps = CASES[case]
    assert fingerprint(algo, env_id, sets, total_steps, str(tmp_path)) == EXPECTED[case]


if __name__ == "__main__":
    # Print the fingerprints under another algorithm name (``pg``: the code before the move).
    import tempfile

    for _, env_id, sets, total_steps in CASES:
        print(f"    {fingerprint(sys.argv[1], env_id, sets, total_steps, tempfile.mkdtemp())!r},   # {env_id} {sets}")
