"""Which env a run trains on: an id, a module's env, or an object given in a script; and how to make one.

A run's config records its env as one string, ``run.env_id``, in one of these forms:

    "CartPole-v1"                 a registered id
    "my_pkg.envs:LineWalk-v0"     Gymnasium's own "module:EnvId": importing the module registers the id
    "my_pkg.envs:LineWalk"        an entry point: an importable ``gym.Env`` subclass or a function
                                  returning a new env (called with ``run.env_kwargs``)

The script API also takes the env as an object (``agents.train(env=...)``): a ``gym.Env`` subclass, a
zero-argument factory, or one ``gym.Env`` instance. ``EnvMaker`` holds what makes such an env; the
config records its "module:name" (e.g. "__main__:LineWalk" for a class defined in the script), which
rebuilds it in another process when the module can be imported there. An instance cannot be rebuilt
from a name: it is recorded as "<instance of module.Class>", it is the run's one training env, and
greedy evaluation runs on deep copies of it taken when the run starts.

Gymnasium's ``check_env`` runs once per process on each env that is not one of Gymnasium's own
(``check_user_env``).
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym

__all__ = ["EnvError", "EnvMaker", "maker_for", "resolve", "check_user_env", "short_name"]


class EnvError(ValueError):
    """A user-facing problem with an environment: unknown id, unsupported spaces."""


@dataclass(frozen=True)
class EnvMaker:
    """How to make the envs of a run whose env was given as an object.

    ``train()`` and ``evaluation()`` each return one new env (a vector env calls them once per
    sub-env); ``max_envs`` is 1 for an instance (there is only one).
    """

    train: Callable[[], gym.Env]
    evaluation: Callable[[], gym.Env]
    max_envs: int | None = None


def maker_for(env: Any) -> tuple[str, EnvMaker | None]:
    """(the string a run's config records, an EnvMaker or None) for what ``agents.train(env=...)`` got:
    an env id (no maker needed), a ``gym.Env`` subclass, a zero-argument factory or a ``gym.Env``."""
    if isinstance(env, str):
        return env, None
    if isinstance(env, gym.Env):
        template = _deepcopy(env)
        name = f"<instance of {type(env).__module__}.{type(env).__qualname__}>"
        return name, EnvMaker(train=lambda: env, evaluation=lambda: copy.deepcopy(template), max_envs=1)
    if isinstance(env, type) and not issubclass(env, gym.Env):
        raise EnvError(f"env={env.__qualname__}: a class must subclass gymnasium.Env")
    if callable(env):
        return _entry_point(env), EnvMaker(train=env, evaluation=env)
    raise EnvError(f"env={env!r}: expected an env id, a gymnasium.Env subclass, a function returning an "
                   f"env, or a gymnasium.Env instance")


def _entry_point(fn: Callable) -> str:
    module, name = getattr(fn, "__module__", None) or "?", getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}:{name}"


def _deepcopy(env: gym.Env) -> gym.Env:
    try:
        return copy.deepcopy(env)
    except Exception as e:   # noqa: BLE001  (anything deepcopy raises means the same to the user)
        raise EnvError(f"env={type(env).__qualname__}(...) instance: evaluation runs on copies of it, and it "
                       f"cannot be copied ({type(e).__name__}: {e}); pass the class or a function that "
                       f"makes one instead") from None


def resolve(env_id: str) -> gym.envs.registration.EnvSpec | Callable[..., gym.Env]:
    """The registered spec of ``env_id``, or for an entry point "module:name" the class or function it names.

    EnvError, one line, when it is neither: an unknown id (with close matches), a module that cannot be
    imported (on ``sys.path``?), a name the module does not have, an object that cannot be rebuilt.
    """
    if not isinstance(env_id, str) or not env_id:
        raise EnvError(f"env id {env_id!r}: expected a non-empty string")
    if env_id.startswith("<instance of "):
        raise EnvError(f"env {env_id}: this run's env was an instance made in a script, which cannot be "
                       f"rebuilt from its name; pass the env again (agents.load(..., env=...))")
    if ":" not in env_id:
        return _registered(env_id)
    module_name, _, name = env_id.partition(":")
    module = _import(module_name, env_id)
    if name in gym.registry:
        return gym.spec(name)
    obj = getattr(module, name.split(".")[0], None)
    for part in name.split(".")[1:]:
        obj = getattr(obj, part, None)
    if obj is None:
        hint = " (a function or class defined inside another cannot be rebuilt by name)" if "<" in name else ""
        raise EnvError(f"env {env_id}: {module_name} registers no env id {name!r} and has no attribute "
                       f"{name!r}{hint}")
    if isinstance(obj, type) and not issubclass(obj, gym.Env) or not callable(obj):
        raise EnvError(f"env {env_id}: {name} is not a gymnasium.Env subclass or a function returning an env")
    return obj


def _import(module_name: str, env_id: str):
    try:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # `rlnn` runs as a console script, whose sys.path lacks the current directory that
            # `python -m` and a script's own folder give: look there too, as a user expects.
            if e.name != module_name.split(".")[0] or os.getcwd() in sys.path or "" in sys.path:
                raise
            sys.path.insert(0, os.getcwd())
            return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        where = "" if e.name != module_name else f" (is its folder on PYTHONPATH? sys.path[0] is {sys.path[0]!r})"
        raise EnvError(f"env {env_id}: cannot import module {e.name!r}{where}") from None
    except Exception as e:   # noqa: BLE001  (the user's module failed while importing)
        raise EnvError(f"env {env_id}: importing {module_name} failed: {type(e).__name__}: {e}") from None


# Env families registered only once a package of their own is installed: the package to name when one
# of their ids is asked for (instead of suggesting a look-alike id from another family).
NAMESPACE_PACKAGES = {"ALE": "ale-py", "MinAtar": "minatar", "MiniGrid": "minigrid", "BabyAI": "minigrid",
                      "highway": "highway-env", "procgen": "procgen"}


def _registered(env_id: str) -> gym.envs.registration.EnvSpec:
    if env_id in gym.registry:
        return gym.spec(env_id)
    import difflib

    namespace = env_id.split("/")[0] if "/" in env_id else None
    if namespace in NAMESPACE_PACKAGES:
        raise EnvError(f"{env_id}: the {namespace} environments are not installed: pip install "
                       f"{NAMESPACE_PACKAGES[namespace]}")
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = (f"; did you mean {', '.join(close)}?" if close else
            "; see gymnasium.pprint_registry(), or give your own env as module:EnvId (README: Your own environment)")
    raise EnvError(f"unknown environment id {env_id!r}{hint}")


def is_gymnasiums_own(target: gym.envs.registration.EnvSpec | Callable) -> bool:
    """Whether an env comes with Gymnasium itself (its checker has nothing to find there)."""
    if isinstance(target, gym.envs.registration.EnvSpec):
        entry = target.entry_point
        module = entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")
    else:
        module = getattr(target, "__module__", "") or ""
    return module.startswith("gymnasium.")


_CHECKED: set[str] = set()
_COLOR = re.compile(r"\x1b\[[0-9;]*m")


def check_user_env(env_id: str, make_one: Callable[[], gym.Env], stream=None) -> None:
    """Gymnasium's ``check_env`` on one fresh env (once per process and env id): an error it raises is an
    EnvError of one line; its warnings become one note line on ``stream`` (stderr by default)."""
    if env_id in _CHECKED:
        return
    from gymnasium.utils.env_checker import check_env

    env = make_one()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
    except Exception as e:   # noqa: BLE001  (the checker raises AssertionError, TypeError, ...)
        raise EnvError(f"env {env_id} fails Gymnasium's check_env: {_one_line(str(e)) or type(e).__name__}") from None
    finally:
        env.close()
    _CHECKED.add(env_id)
    notes = list(dict.fromkeys(_one_line(str(w.message)) for w in caught))
    if notes:
        more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
        print(f"note: Gymnasium's check_env on {env_id}: {notes[0]}{more}", file=stream or sys.stderr)


def _one_line(text: str) -> str:
    text = _COLOR.sub("", text).replace("WARN: ", "")
    return " ".join(text.split())


def short_name(env_id: str) -> str:
    """A file-name-safe short form of an env id for run directory names: "my_pkg.envs:LineWalk-v0" ->
    "LineWalk-v0", "ALE/Pong-v5" -> "ALE-Pong-v5", "<instance of m.LineWalk>" -> "LineWalk"."""
    name = env_id.strip("<>").split(":")[-1].split(" ")[-1].split(".")[-1] if (
        env_id.startswith("<") or ":" in env_id) else env_id
    return re.sub(r"[^A-Za-z0-9._-]", "-", name.replace("/", "-")) or "env"
