"""The search-space format of ``rlnn sweep``: parsing a space file and sampling points from it.

A space file is TOML: an optional ``algo`` and the tables ``[agent]`` (the algorithm's config dataclass,
e.g. DQNConfig) and ``[run]`` (agents.config.RunConfig). A value that is a one-key inline table is a
distribution::

    algo = "dqn"
    [agent]
    lr = { loguniform = [1e-4, 3e-3] }           # log-uniform float in [low, high], low > 0
    gamma = { uniform = [0.95, 0.999] }           # uniform float in [low, high]
    batch_size = { choice = [32, 64, 128] }       # one of the values (any type the key accepts)
    hidden_sizes = { choice = [[64, 64], [128]] }
    target_update_interval = { int = [50, 1000] } # uniform integer, both ends inclusive
    buffer_size = { logint = [5_000, 100_000] }   # log-uniform integer, both ends inclusive, low > 0
    [run]
    eval_every = 2_000                            # a plain value is fixed for every trial

Every key is checked against the algorithm's config (name and type, e.g. ``uniform`` only for float keys)
and every range (low < high, log low > 0, non-empty choice) here; ``experiments.sweep.spec`` then builds
and validates the config of every range end and every choice before anything starts. ``run.seed``,
``run.env_id`` and ``run.logdir`` cannot be searched (``--seeds``, ``--env`` and the sweep directory set
them).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents import ALGOS, UnknownAlgo, get_algo
from agents.config import ConfigError, RunConfig, coerce, read_toml, type_name

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
NOT_SEARCHABLE = {"seed": "--seeds", "env_id": "--env", "logdir": "the sweep directory"}


@dataclass(frozen=True)
class Param:
    """One searched key: ``section.name`` drawn from ``kind`` with ``args`` ((low, high) or the choices)."""

    section: str
    name: str
    kind: str
    args: tuple
    tp: Any = field(compare=False, repr=False)  # the config field's annotation

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def log(self) -> bool:
        return self.kind in ("loguniform", "logint")

    @property
    def integer(self) -> bool:
        return self.kind in ("int", "logint")

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        lo, hi = self.args
        if self.kind == "int":
            return int(rng.integers(lo, hi + 1))
        if self.kind == "logint":
            return int(min(hi, math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))
        x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.kind == "loguniform" else rng.uniform(lo, hi)
        return float(min(hi, max(lo, float(f"{x:.4g}"))))  # 4 significant digits: readable, plenty fine


@dataclass
class Space:
    """The searched keys (``params``), the fixed values (``fixed``: ``section.key`` -> value) and the file."""

    params: list[Param]
    fixed: dict[str, Any]
    source: str

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {p.key: p.sample(rng) for p in self.params}

    def by_key(self) -> dict[str, Param]:
        return {p.key: p for p in self.params}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_choice(section: str, name: str, args: Any, tp: Any, where: str) -> Param:
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: choice needs a non-empty list of values, e.g. {{ choice = [32, 64] }}")
    values = tuple(coerce(v, tp, f"{section}.{name}") for v in args)
    if len(set(map(json.dumps, values))) != len(values):
        raise ConfigError(f"{where}: choice lists a value twice")
    return Param(section, name, "choice", values, tp)


def _parse_range(section: str, name: str, kind: str, args: Any, tp: Any, where: str) -> Param:
    key = f"{section}.{name}"
    if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)):
        raise ConfigError(f"{where}: {kind} needs [low, high] (two numbers), got {args!r}")
    lo, hi = args
    if not lo < hi:
        raise ConfigError(f"{where}: {kind} = [{lo}, {hi}]: low must be less than high")
    if kind in ("int", "logint"):
        if not all(isinstance(a, int) for a in args):
            raise ConfigError(f"{where}: {kind} = [{lo}, {hi}]: bounds must be integers")
        coerce(lo, tp, key)  # an int range on a str or list key fails here
    else:
        try:
            coerce(0.5, tp, key)
        except ConfigError:
            raise ConfigError(f"{where}: {kind} draws floats but {key} takes {type_name(tp)}: "
                              "use int, logint or choice") from None
        lo, hi = float(lo), float(hi)
    if kind in ("loguniform", "logint") and not lo > 0:
        raise ConfigError(f"{where}: {kind} = [{args[0]}, {args[1]}]: low must be > 0")
    return Param(section, name, kind, (lo, hi), tp)


def _parse_param(section: str, name: str, spec: dict, tp: Any, source: str) -> Param:
    where = f"{source}: {section}.{name}"
    if len(spec) != 1:
        raise ConfigError(f"{where} = {spec}: a distribution is one key, one of {', '.join(DISTRIBUTIONS)} "
                          "(e.g. { loguniform = [1e-4, 1e-2] })")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}: use one of {', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        return _parse_choice(section, name, args, tp, where)
    return _parse_range(section, name, kind, args, tp, where)


def _parse_table(section: str, cls: type, table: Any, source: str, space: Space) -> None:
    """Add the keys of one table ([run] or [agent]) to ``space``: distributions to params, values to fixed."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {section} must be a table ([{section}])")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for name, value in table.items():
        key = f"{section}.{name}"
        if name not in names:
            raise ConfigError(f"{source}: unknown key {key}: allowed keys are {', '.join(names) or '(none)'}")
        if section == "run" and name in NOT_SEARCHABLE:
            raise ConfigError(f"{source}: {key} cannot be in a search space: {NOT_SEARCHABLE[name]} sets it")
        tp = hints[name]
        try:
            if isinstance(value, dict) and tp is not dict:  # a dict-typed key (env_kwargs) takes a table
                space.params.append(_parse_param(section, name, value, tp, source))
            else:
                space.fixed[key] = coerce(value, tp, key)
        except ConfigError as e:
            msg = str(e)  # coerce's messages name the key only: say which file too
            raise ConfigError(msg if msg.startswith(f"{source}: ") else f"{source}: {msg}") from None


def parse_space(doc: dict[str, Any], algo: str, source: str = "space") -> Space:
    """A Space from a parsed TOML document; ConfigError (one line) on any mistake."""
    config_cls, _ = get_algo(algo)
    for top in doc:
        if top not in ("algo", "run", "agent"):
            raise ConfigError(f"{source}: unknown top-level key {top!r}: allowed are algo, [agent], [run]")
    if "algo" in doc and doc["algo"] != algo:
        raise ConfigError(f"{source}: algo = {doc['algo']!r} but the sweep's algorithm is {algo!r}")
    space = Space([], {}, source)
    for section, cls in (("run", RunConfig), ("agent", config_cls)):
        _parse_table(section, cls, doc.get(section, {}), source, space)
    if not space.params:
        raise ConfigError(f"{source}: no distribution to search: write e.g. lr = {{ loguniform = [1e-4, 1e-2] }} "
                          "under [agent]")
    return space


def load_space(path: str, algo: str | None) -> tuple[Space, str]:
    """(space, algo) from a space file; ``algo`` None takes the file's ``algo``."""
    doc = read_toml(path)
    algo = algo or doc.get("algo")
    if algo is None:
        raise ConfigError(f"{path}: no algo: pass --algo or write algo = \"...\" in the file")
    if algo not in ALGOS:
        raise UnknownAlgo(f"unknown algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    return parse_space(doc, algo, path), algo


def short(v: Any) -> str:
    """A value as tables and progress lines show it: floats to 4 significant digits, JSON for the rest."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict, str)) else str(v)


def params_text(params: dict[str, Any]) -> str:
    """A point of the space in one line: ``lr=0.001, batch_size=32``."""
    return ", ".join(f"{k.split('.', 1)[1]}={short(v)}" for k, v in params.items())
