"""Typed configs <-> TOML files and ``--set key=value``, with one-line errors.

A config file maps 1:1 onto the dataclasses::

    algo = "dqn"
    [run]            # agents.config.RunConfig
    total_steps = 50_000
    [agent]          # the algorithm's config dataclass, e.g. agents.dqn.DQNConfig
    lr = 2.5e-4

``--set run.seed=3``, ``--set agent.lr=1e-3`` (or ``--set lr=1e-3`` when the name is unambiguous, or
``--set dqn.lr=1e-3``, which only applies when the algorithm is dqn). Values are parsed as TOML values,
so ``true``, ``1e-3``, ``"huber"`` and ``[64, 64]`` all work; a bare word is taken as a string.
Precedence, lowest first: dataclass defaults, the preset for (algo, env), ``--config FILE``, the
command line's own flags (``--env``, ``--seed``, ``--total-steps``, ``--logdir``), ``--set``.

Presets are TOML files in ``experiments/configs/`` (data shipped with the package, found by path: the
script API ``agents.train`` applies them too, and ``agents`` imports nothing from ``experiments``).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from agents.registry import ALGOS, canonical, get_algo

PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "configs")
DEFAULT_ALGO = "pg"


@dataclass
class RunConfig:
    """What the loop does, independent of the algorithm (the TOML ``[run]`` table)."""

    env_id: str = "CartPole-v1"          # Gymnasium env id, "module:EnvId" or "module:Class" (README: Your own environment)
    seed: int = 0                        # fixes the whole run: network init, exploration, env resets
    total_steps: int = 100_000           # env steps (real transitions, summed over vector envs) to train
    num_envs: int = 1                    # vector sub-envs stepped together
    normalize_obs: bool = False          # running mean/variance normalization of observations (frozen for evaluation)
    eval_every: int = 5_000              # env steps between greedy evaluations
    eval_episodes: int = 10              # episodes per greedy evaluation (one per sub-env of the eval env); 0 = none
    stop_at_eval_return: float | None = None   # stop once a greedy evaluation reaches this mean return
    checkpoint_every: int = 25_000       # env steps between checkpoints (and one at the end)
    keep_checkpoints: int = 3            # step checkpoints kept (checkpoints/best.npz is kept apart)
    log_every: int = 1_000               # env steps between logged losses and SPS
    network_log_every: int = 5_000       # env steps between per-layer network statistics; 0 = off
    logdir: str = "runs"                 # parent directory of run directories
    env_kwargs: dict = field(default_factory=dict)   # keyword arguments of gym.make or of the env class

    def validate(self) -> None:
        positive = ("total_steps", "num_envs", "eval_every", "checkpoint_every", "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} = {getattr(self, name)}: must be at least 1")
        for name in ("eval_episodes", "network_log_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"run.{name} = {getattr(self, name)}: must be 0 or more")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run is made from: the algorithm, its ``[run]`` and ``[agent]`` tables, and the
    preset they started from (None: dataclass defaults). ``to_dict()`` is the run's config.json."""

    algo: str
    run: RunConfig
    agent: Any
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "run": dataclasses.asdict(self.run), "agent": dataclasses.asdict(self.agent)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any], source: str = "config.json") -> "TrainConfig":
        """Back from ``to_dict()`` output (a run's config.json), every key checked as in a TOML file."""
        if not isinstance(saved, dict) or "algo" not in saved:
            raise ConfigError(f"{source}: no algo key (not an rlnn run config)")
        for section in ("run", "agent"):
            if not isinstance(saved.get(section), dict):
                what = "missing" if section not in saved else f"{saved[section]!r}, not a table"
                raise ConfigError(f"{source}: {section} is {what} (not an rlnn run config)")
        config_cls, _ = get_algo(saved["algo"])
        try:
            return cls(saved["algo"], update(RunConfig(), saved["run"], "run"),
                       update(config_cls(), saved["agent"], "agent"))
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


# Keys a resumed run may change (``rlnn train --resume RUN --set agent.lr=1e-4``): schedules, step sizes
# and cadences, which the agents and the loop read from the config at every use. Everything else (network
# shapes, env, seed, num_envs, buffer sizes) is baked into the checkpoint's arrays or the run's RNG streams.
RESUME_CHANGEABLE = {
    "run": ("total_steps", "eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints", "log_every",
            "network_log_every", "stop_at_eval_return"),
    "agent": ("lr", "lr_schedule", "lr_end", "lr_anneal_steps", "value_lr", "ent_coef", "max_grad_norm",
              "start_e", "end_e", "exploration_steps", "target_update_interval", "tau"),
}


def resume_changes(saved: "TrainConfig", new: "TrainConfig") -> dict[str, list]:
    """{"section.key": [old, new]} of what ``new`` changes in a run configured as ``saved``;
    ConfigError naming the first key that a resumed run cannot change."""
    if new.algo != saved.algo:
        raise ConfigError(f"algo {new.algo!r} does not match the run's algorithm {saved.algo!r}")
    changes = {}
    for section in ("run", "agent"):
        old, now = dataclasses.asdict(getattr(saved, section)), dataclasses.asdict(getattr(new, section))
        for key in old:
            if old[key] != now[key]:
                if key not in RESUME_CHANGEABLE[section]:
                    raise ConfigError(f"{section}.{key} cannot change when resuming (it is fixed when a run "
                                      f"starts); can change: {', '.join(RESUME_CHANGEABLE[section])}")
                changes[f"{section}.{key}"] = [old[key], now[key]]
    return changes


class ConfigError(ValueError):
    """A user mistake in a config file or --set: the message is one line naming key and what is allowed."""


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, meaning) of every field of a config dataclass, in order. The meaning is the
    comment on the field's line in the source of the class that declares it (and the comment lines right
    under it): the one place a key is explained, for ``rlnn config``, docs/config.md and the help of the CLI."""

    hints = typing.get_type_hints(cls)
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):          # a subclass's comment wins over its base's
        if dataclasses.is_dataclass(klass):
            docs.update(_field_comments(klass))
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append((f.name, type_name(hints[f.name]), default, docs.get(f.name, "")))
    return out


def _field_comments(klass: type) -> dict[str, str]:
    """{field: the comment on its line in ``klass``'s own source, and the comment lines right under it}."""
    import inspect
    import io
    import tokenize

    comments: dict[int, str] = {}
    source, _ = inspect.getsourcelines(klass)
    for tok in tokenize.generate_tokens(io.StringIO("".join(source)).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    docs = {}
    for number, text in enumerate(source, start=1):
        stripped = text.strip()
        name = stripped.split(":")[0] if ":" in stripped and not stripped.startswith(("#", "def ", '"')) else ""
        if not name.isidentifier() or name in docs or number not in comments:
            continue
        doc, follow = comments[number], number + 1
        while follow in comments and source[follow - 1].strip().startswith("#"):
            doc += " " + comments[follow]
            follow += 1
        docs[name] = doc
    return docs


def _allowed(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) is not None or getattr(tp, "__name__", None) is None:
        return str(tp).replace("typing.", "")
    return tp.__name__


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
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a float")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value} is not allowed: numbers must be finite")
        return float(value)
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
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def presets() -> dict[str, dict[str, Any]]:
    """Preset name -> parsed TOML, for every file in experiments/configs/."""
    return {os.path.splitext(os.path.basename(p))[0]: read_toml(p)
            for p in sorted(glob.glob(os.path.join(PRESET_DIR, "*.toml")))}


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
    if "algo" in doc and str(doc["algo"]).lower() != algo:
        raise ConfigError(f"{source}: algo = {doc['algo']!r} but the algorithm asked for is {algo!r}")
    for section in ("run", "agent"):
        if not isinstance(doc.get(section, {}), dict):
            raise ConfigError(f"{source}: {section} = {doc[section]!r} is not a table: write [{section}] "
                              f"with its keys on the lines below")
    run_cfg = update(run_cfg, doc.get("run", {}), "run")
    agent_cfg = update(agent_cfg, doc.get("agent", {}), "agent")
    return run_cfg, agent_cfg


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``--set`` items ``key=value`` -> {key: value}, each value parsed as TOML (a bare word is a string)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set agent.lr=1e-3")
        key, text = item.split("=", 1)
        out[key.strip()] = parse_value(text.strip())
    return out


def as_sets(sets: list[str] | tuple[str, ...] | dict[str, Any] | None) -> dict[str, Any]:
    """``--set`` items as {key: value}: a dict is taken as it is, a list of "key=value" strings parsed;
    TypeError for anything else (a single string included: it is ambiguous with a list of one)."""
    if sets is None:
        return {}
    if isinstance(sets, dict):
        return sets
    if isinstance(sets, (list, tuple)) and all(isinstance(item, str) for item in sets):
        return parse_sets(list(sets))
    raise TypeError(f"set={sets!r}: expected a dict {{key: value}}, e.g. {{'agent.lr': 1e-3}}, or a list of "
                    "'key=value' strings")


def apply_sets(sets: dict[str, Any], algo: str, run_cfg: RunConfig, agent_cfg: Any) -> tuple[RunConfig, Any]:
    """Apply {key: value}: keys ``run.key``, ``agent.key``, ``ALGO.key`` (only when ``algo`` is ALGO; others
    are skipped) or a bare key that only one of the two sections has."""
    run_names = {f.name for f in dataclasses.fields(RunConfig)}
    agent_names = {f.name for f in dataclasses.fields(agent_cfg)}
    for key, value in sets.items():
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


def resumed(path: str, algo: str | None = None, total_steps: int | None = None,
            sets: list[str] | dict[str, Any] | None = None, **fixed: Any) -> "TrainConfig":
    """The config of a run to continue: its config.json with ``total_steps`` and ``sets`` applied (the loop
    then refuses keys a running run cannot change). ``fixed``: what would start a different run (env, seed,
    config file, logdir...): ConfigError naming them when any is given. ``rlnn train --resume`` and
    ``agents.train(resume=...)`` build a resumed run's config here."""
    from agents.rundir import RunDir

    given = [name for name, value in fixed.items() if value is not None]
    if given:
        raise ConfigError(f"resuming {path}: {', '.join(given)} cannot change (a run keeps its env, seed "
                          "and configuration; total_steps and set can change what may change)")
    rd = RunDir(path)
    saved = TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
    if algo is not None and canonical(algo) != saved.algo:
        raise ConfigError(f"algo {algo!r} does not match the run's algorithm {saved.algo!r}")
    run_cfg, agent_cfg = apply_sets(as_sets(sets), saved.algo, saved.run, saved.agent)
    if total_steps is not None:
        run_cfg = update(run_cfg, {"total_steps": total_steps}, "run")
    return TrainConfig(saved.algo, run_cfg, agent_cfg, saved.preset)


def build(algo: str | None = None, env_id: str | None = None, config_file: str | None = None,
          sets: list[str] | dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
          use_preset: bool = True) -> TrainConfig:
    """A run's config, lowest precedence first: dataclass defaults, the preset for (algo, env),
    ``config_file``, ``env_id`` and ``overrides`` (the command line's flags), ``sets`` (``--set`` items
    ``"key=value"``, or a dict {key: value} as the script API takes them).

    ``algo`` None takes the config file's ``algo``, else ``DEFAULT_ALGO``. The preset is the one for
    the env the run will use: ``env_id``, else the config file's ``run.env_id``, else the default env.
    """
    doc = read_toml(config_file) if config_file is not None else {}
    algo = canonical(algo or doc.get("algo") or DEFAULT_ALGO)
    config_cls, _ = get_algo(algo)
    run_cfg, agent_cfg = RunConfig(), config_cls()
    preset_name = None
    if use_preset:
        file_run = doc.get("run") if isinstance(doc.get("run"), dict) else {}
        found = preset_for(algo, env_id or file_run.get("env_id") or run_cfg.env_id)
        if found is not None:
            preset_name, preset = found
            run_cfg, agent_cfg = apply_document(algo, run_cfg, agent_cfg, preset, f"preset {preset_name}")
    if config_file is not None:
        run_cfg, agent_cfg = apply_document(algo, run_cfg, agent_cfg, doc, config_file)
    flags = dict(overrides or {}, env_id=env_id)
    run_cfg = update(run_cfg, {k: v for k, v in flags.items() if v is not None}, "run")
    run_cfg, agent_cfg = apply_sets(as_sets(sets), algo, run_cfg, agent_cfg)
    return TrainConfig(algo, run_cfg, agent_cfg, preset_name)
