"""Typed configs <-> TOML files and ``--set key=value``, with one-line errors.

A config file maps 1:1 onto the dataclasses::

    algo = "dqn"
    [run]            # agents.loop.RunConfig
    total_steps = 50_000
    [agent]          # the algorithm's config dataclass, e.g. agents.dqn.DQNConfig
    lr = 2.5e-4

``--set run.seed=3``, ``--set agent.lr=1e-3`` (or ``--set lr=1e-3`` when the name is unambiguous, or
``--set dqn.lr=1e-3``, which only applies when the algorithm is dqn). Values are parsed as TOML values,
so ``true``, ``1e-3``, ``"huber"`` and ``[64, 64]`` all work; a bare word is taken as a string.
Precedence, lowest first: dataclass defaults, the preset for (algo, env), ``--config FILE``, ``--set``.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import tomllib
import types
import typing
from typing import Any

from agents import ALGOS, get_algo
from agents.loop import RunConfig

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")


class ConfigError(ValueError):
    """A user mistake in a config file or --set: the message is one line naming key and what is allowed."""


def _allowed(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, bool, str, X | None, list[int]...)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key}: {value!r} is not a {type_name(tp)}")
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: {value!r} is not a list (expected {type_name(tp)}, e.g. [64, 64])")
        return type(value)(coerce(v, item, key) for v in value) if origin is list else tuple(
            coerce(v, item, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {value!r} is not a bool (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: {value!r} is not an int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: {value!r} is not a float")
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{key}: {value!r} is not a table (e.g. {{max_episode_steps = 200}})")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: {value!r} is not a string")
    return value


def update(obj: Any, values: dict[str, Any], section: str) -> Any:
    """A copy of dataclass ``obj`` with ``values`` applied, each checked against its field's type."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown key {section}.{key}: allowed keys are {_allowed(type(obj)) or '(none)'}")
        changes[key] = coerce(value, hints[key], f"{section}.{key}")
    new = dataclasses.replace(obj, **changes)
    check = getattr(new, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return new


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def presets() -> dict[str, dict[str, Any]]:
    """Preset name -> parsed TOML, for every file in experiments/configs/."""
    return {os.path.splitext(os.path.basename(p))[0]: read_toml(p)
            for p in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.toml")))}


def preset_for(algo: str, env_id: str) -> tuple[str, dict[str, Any]] | None:
    for name, data in presets().items():
        if data.get("algo") == algo and data.get("run", {}).get("env_id", "CartPole-v1") == env_id:
            return name, data
    return None


def apply_document(algo: str, run_cfg: RunConfig, agent_cfg: Any, doc: dict[str, Any], source: str):
    allowed = {"algo", "run", "agent"}
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown top-level key {key!r}: allowed are algo, [run], [agent]")
    if "algo" in doc and doc["algo"] != algo:
        raise ConfigError(f"{source}: algo = {doc['algo']!r} but --algo is {algo!r}")
    run_cfg = update(run_cfg, doc.get("run", {}), "run")
    agent_cfg = update(agent_cfg, doc.get("agent", {}), "agent")
    return run_cfg, agent_cfg


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items: list[str], algo: str, run_cfg: RunConfig, agent_cfg: Any) -> tuple[RunConfig, Any]:
    """Apply ``--set`` items: ``run.key=v``, ``agent.key=v``, ``ALGO.key=v`` or a bare unambiguous key."""
    run_names = {f.name for f in dataclasses.fields(RunConfig)}
    agent_names = {f.name for f in dataclasses.fields(agent_cfg)}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set agent.lr=1e-3")
        key, text = item.split("=", 1)
        key, value = key.strip(), parse_value(text.strip())
        section, _, name = key.rpartition(".")
        if section in ALGOS:
            if section != algo:
                continue
            section = "agent"
        if section == "":
            in_run, in_agent = name in run_names, name in agent_names
            if in_run and in_agent:
                raise ConfigError(f"--set {key}: ambiguous, write run.{name} or agent.{name}")
            if not (in_run or in_agent):
                raise ConfigError(f"--set {key}: unknown key; run keys: {', '.join(sorted(run_names))}; "
                                  f"agent keys: {', '.join(sorted(agent_names)) or '(none)'}")
            section = "run" if in_run else "agent"
        if section == "run":
            run_cfg = update(run_cfg, {name: value}, "run")
        elif section == "agent":
            agent_cfg = update(agent_cfg, {name: value}, "agent")
        else:
            raise ConfigError(f"--set {key}: unknown section {section!r}: use run., agent. or an algorithm name")
    return run_cfg, agent_cfg


def build(algo: str, env_id: str | None = None, config_file: str | None = None, sets: list[str] | None = None,
          overrides: dict[str, Any] | None = None, use_preset: bool = True) -> tuple[RunConfig, Any, str | None]:
    """(run config, agent config, preset name used) from defaults, preset, file, overrides and --set."""
    config_cls, _ = get_algo(algo)
    run_cfg, agent_cfg = RunConfig(), config_cls()
    preset_name = None
    if config_file is not None:
        run_cfg, agent_cfg = apply_document(algo, run_cfg, agent_cfg, read_toml(config_file), config_file)
    elif use_preset:
        found = preset_for(algo, env_id or run_cfg.env_id)
        if found is not None:
            preset_name, doc = found
            run_cfg, agent_cfg = apply_document(algo, run_cfg, agent_cfg, doc, f"preset {preset_name}")
    if env_id is not None:
        run_cfg = update(run_cfg, {"env_id": env_id}, "run")
    run_cfg = update(run_cfg, {k: v for k, v in (overrides or {}).items() if v is not None}, "run")
    run_cfg, agent_cfg = parse_sets(list(sets or []), algo, run_cfg, agent_cfg)
    return run_cfg, agent_cfg, preset_name


def from_saved(algo: str, saved: dict[str, Any]) -> tuple[RunConfig, Any]:
    """Configs back from a run's config.json."""
    config_cls, _ = get_algo(algo)
    return (update(RunConfig(), saved.get("run", {}), "run"),
            update(config_cls(), saved.get("agent", {}), "agent"))
