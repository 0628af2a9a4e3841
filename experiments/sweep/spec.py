"""What a sweep runs: its spec (``SweepSpec``, the sweep directory's sweep.json) and a trial's config.

A trial's config, lowest precedence first: the (algo, env) preset, ``--total-steps``, the space's fixed
values, the sweep's ``--set`` items, the trial's sampled values. A ``--set`` of a searched key would be
silently overridden, so ``check_space`` refuses it, along with any range end or choice whose config does
not validate; that is also why the sampled values may come before ``--set`` in the config file an
``rlnn train`` worker reads (``trial_document``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.config import ConfigError, TrainConfig, apply_sets, build, parse_sets
from experiments.executor import SpecFile
from experiments.sweep.space import Param, Space, params_text

OBJECTIVES = {"auc": "mean greedy eval return over the budget (area under the eval curve / span)",
              "final_eval": "last greedy eval return"}


@dataclass(frozen=True)
class SweepSpec(SpecFile):
    """Everything ``rlnn sweep`` was asked for (the search space itself is the directory's space.toml).

    ``sets``: the ``--set`` items; ``threshold``: the return that counts as solved; ``time``: the stamp
    in the run directories' names; ``backend``/``address``/``max_concurrent``: where the trials ran
    (``--resume`` may change them)."""

    FILE = "sweep.json"
    KIND = "sweep"

    algo: str
    env: str
    seeds: tuple[int, ...]
    trials: int
    total_steps: int | None
    sets: tuple[str, ...]
    search: str
    search_seed: int
    early_stop: str
    objective: str
    threshold: float
    backend: str
    address: str | None
    max_concurrent: int | None
    space_file: str
    time: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepSpec":
        if "sets" not in data and "user_sets" in data:  # sweep.json before the spec was a dataclass
            data = dict(data, sets=data["user_sets"])
        return super().from_dict(data)


def _nested(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    doc: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, name = key.split(".", 1)
        doc.setdefault(section, {})[name] = value
    return doc


def trial_config(spec: SweepSpec, space: Space, params: dict[str, Any], seed: int | None = None) -> TrainConfig:
    """The config of a trial's run (``seed`` None: the default seed), as ``rlnn train`` builds it."""
    sets = {**space.fixed, **parse_sets(list(spec.sets)), **params}
    return build(spec.algo, spec.env, None, sets, {"total_steps": spec.total_steps, "seed": seed})


def trial_document(spec: SweepSpec, space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """The config file an ``rlnn train`` worker gets (with the sweep's ``--set`` items on its command
    line): ``--total-steps``, the fixed values and the sampled ones, in ``[run]``/``[agent]`` tables.
    The same config as ``trial_config``, since no ``--set`` item names a sampled key."""
    flat = {} if spec.total_steps is None else {"run.total_steps": spec.total_steps}
    return {"algo": spec.algo, **_nested({**flat, **space.fixed, **params})}


def _field(p: Param, run_cfg: Any, agent_cfg: Any) -> Any:
    return getattr(run_cfg if p.section == "run" else agent_cfg, p.name)


def _refuse_sets_of(spec: SweepSpec, p: Param, cfg: TrainConfig) -> None:
    """No --set item writes ``p``'s key: applied on top of ``cfg`` (where ``p`` has its sampled value) it
    would change it. ``apply_sets`` says where an item lands (``dqn.lr``, a bare ``lr``...)."""
    for key, value in parse_sets(list(spec.sets)).items():
        if _field(p, *apply_sets({key: value}, spec.algo, cfg.run, cfg.agent)) != _field(p, cfg.run, cfg.agent):
            raise ConfigError(f"--set {key}: {p.key} is searched by the space file; drop one of them")


def check_space(spec: SweepSpec, space: Space) -> None:
    """Build and validate the config of every range end and every choice (cross-key checks included),
    and refuse a --set of a searched key. A --set value equal to one end differs from the other end."""
    base = {p.key: p.args[0] for p in space.params}
    trial_config(spec, space, base)
    for p in space.params:
        for i, value in enumerate(p.args):
            try:
                cfg = trial_config(spec, space, {**base, p.key: value})
            except ConfigError as e:
                raise ConfigError(f"{space.source}: {p.key} = {json.dumps(value)} is not a valid config: {e}") from None
            if i in (0, len(p.args) - 1):
                _refuse_sets_of(spec, p, cfg)


def sample_trials(spec: SweepSpec, space: Space) -> list[dict[str, Any]]:
    """The params of every trial (random search), drawn up front from ``search_seed``; each one built."""
    rng = np.random.default_rng(spec.search_seed)
    sampled = [space.sample(rng) for _ in range(spec.trials)]
    for k, params in enumerate(sampled):
        try:
            trial_config(spec, space, params)
        except ConfigError as e:
            raise ConfigError(f"{space.source}: trial {k} ({params_text(params)}) is not a valid config: {e}") from None
    return sampled
