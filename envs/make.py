"""Building the vector envs rlnn trains and evaluates on, and checking that an env id is usable."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import NormalizeObservation

from envs import cartpole
from envs.normalize import freeze_normalizer, obs_normalizer, sync_normalizer
from envs.sync import SyncVectorEnv
from envs.wrappers import EpisodeStatistics

__all__ = [
    "EnvError",
    "check_env_id",
    "check_spaces",
    "check_first_step",
    "make_vec_env",
    "make_eval_env",
    "make_eval_env_from_state",
]


class EnvError(ValueError):
    """A user-facing problem with an environment: unknown id, unsupported spaces."""


# Env families registered only once a package of their own is installed: the package to name when one
# of their ids is asked for (instead of suggesting a look-alike id from another family).
NAMESPACE_PACKAGES = {"ALE": "ale-py", "MinAtar": "minatar", "MiniGrid": "minigrid", "BabyAI": "minigrid",
                      "highway": "highway-env", "procgen": "procgen"}
# Registered NumPy vector envs we replace with our own: the same dynamics bit for bit, a cheaper step.
OUR_VECTOR_ENVS = {"gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv": cartpole.ENTRY_POINT}
# Gymnasium's own optional dependencies, as rlnn's extras (pyproject.toml) that install them.
EXTRAS = {"box2d": "box2d", "Box2D": "box2d", "pygame": "render"}


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming close matches when ``env_id`` is not registered, or the package that would
    register it."""
    if env_id in gym.registry:
        return
    namespace = env_id.split("/")[0] if "/" in env_id else None
    if namespace in NAMESPACE_PACKAGES:
        raise EnvError(f"{env_id}: the {namespace} environments are not installed: pip install "
                       f"{NAMESPACE_PACKAGES[namespace]}")
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry()"
    raise EnvError(f"unknown environment id {env_id!r}{hint}")


def check_spaces(observation_space: gym.Space, action_space: gym.Space, discrete_actions: bool = True) -> None:
    """Our MLP agents need a flat Box observation and (for pg/dqn) a Discrete action space."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise EnvError(f"observation space {observation_space} is not supported: a flat Box of shape (n,) is required")
    if discrete_actions and not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(f"action space {action_space} is not supported: a Discrete action space is required")


def check_first_step(env: gym.vector.VectorEnv, env_id: str, kwargs: dict[str, Any]) -> None:
    """Reset ``env`` and step it once with a random action: an ``env_kwargs`` value of a wrong type (such
    as ``max_episode_steps = "a"``) shows only there. EnvError naming them."""
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
    except Exception as e:
        if not kwargs:
            raise
        raise _kwargs_error(env_id, kwargs, e) from None


def _kwargs_error(env_id: str, kwargs: dict[str, Any], e: Exception) -> EnvError:
    """The one line for an env that fails with ``kwargs``: the failure is theirs, and named."""
    reason = str(e).split(" was raised")[0].splitlines()[0] if str(e) else ""
    return EnvError(f"run.env_kwargs = {kwargs}: {env_id} does not take them ({type(e).__name__}: {reason})")


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int,
    normalize_obs: bool = False,
    vectorization_mode: str = "auto",
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """A NEXT_STEP vector env with episode statistics (seed it with ``env.reset(seed=...)``).

    ``vectorization_mode``: "auto" takes the registered NumPy vector env where one exists and
    ``num_envs >= 4``, else ``SyncVectorEnv``; "sync" and "vector_entry_point" force one.
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise EnvError(f"num_envs={num_envs} is not allowed: it must be at least 1")
    if vectorization_mode not in ("auto", "sync", "vector_entry_point"):
        raise EnvError(f"vectorization_mode={vectorization_mode!r} is not allowed: use auto, sync or vector_entry_point")
    mode = vectorization_mode
    if mode == "auto":
        # Measured here (CartPole, µs per call at n = 1/2/4/8/16, two runs' lower figures, 2026-11-30):
        # Gymnasium's SyncVectorEnv 51/43/71/116/214, ours (envs.sync) 29/33/58/102/184; Gymnasium's
        # NumPy vector env 95/108/88/79/79, ours (envs.cartpole) 61/40/46/44/80. The NumPy env's cost is
        # nearly fixed per call, the sync env's grows with n: the NumPy env wins from about 4 envs on.
        has_vector = gym.registry[env_id].vector_entry_point is not None
        mode = "vector_entry_point" if has_vector and num_envs >= 4 else "sync"
    env = _make(env_id, num_envs, mode, kwargs)
    if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
        raise EnvError(f"{env_id}: vector env autoreset mode {env.metadata.get('autoreset_mode')} is not NEXT_STEP")
    env = EpisodeStatistics(env)
    if normalize_obs:
        env = NormalizeObservation(env)
    env.action_space.seed(seed)
    return env


def _make(env_id: str, num_envs: int, mode: str, kwargs: dict[str, Any]) -> gym.vector.VectorEnv:
    """The vector env in NEXT_STEP mode (ours where we have one), with Gymnasium's errors for missing
    packages and bad keyword arguments turned into one line that says what to do."""
    try:
        spec = gym.spec(env_id)
        if mode == "sync":
            return _make_sync(spec, num_envs, kwargs)
        ours = OUR_VECTOR_ENVS.get(spec.vector_entry_point)
        return gym.make_vec(spec if ours is None else dataclasses.replace(spec, vector_entry_point=ours),
                            num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except gym.error.DependencyNotInstalled as e:
        extra = next((x for key, x in EXTRAS.items() if key in str(e)), None)
        fix = f"pip install 'rlnn[{extra}]'" if extra else str(e).split(". ")[0]
        raise EnvError(f"{env_id} needs a package that is not installed: {fix}") from None
    except ModuleNotFoundError as e:    # the entry point's own import: phys2d/ and tabular/ envs need jax
        top = (e.name or "").split(".")[0]
        raise EnvError(f"{env_id} needs the package {top!r}, which is not installed: pip install {top}") from None
    except Exception as e:      # with env_kwargs: unexpected keyword arguments, values of a wrong type
        if not kwargs:
            raise
        raise _kwargs_error(env_id, kwargs, e) from None


def make_eval_env(env_id: str, num_envs: int, train_env: gym.vector.VectorEnv | None = None,
                  **kwargs: Any) -> gym.vector.VectorEnv:
    """An env for greedy evaluation: one episode per sub-env, normalization frozen at the training stats."""
    normalizer = obs_normalizer(train_env) if train_env is not None else None
    env = make_vec_env(env_id, num_envs, seed=0, normalize_obs=normalizer is not None, **kwargs)
    if normalizer is not None:
        sync_normalizer(env, train_env)
    return env


def make_eval_env_from_state(env_id: str, num_envs: int, normalize_obs: bool, env_state: dict[str, np.ndarray],
                             **kwargs: Any) -> gym.vector.VectorEnv:
    """Like ``make_eval_env``, but with the statistics a checkpoint saved instead of a live training env.

    ``env_state`` is the flat dict ``env_state()`` returns. Without a saved ``norm/mean`` the
    normalizer (if ``normalize_obs``) keeps its fresh statistics and keeps updating them.
    """
    env = make_vec_env(env_id, num_envs, seed=0, normalize_obs=normalize_obs, **kwargs)
    if normalize_obs and "norm/mean" in env_state:
        count = env_state.get("norm/count")
        freeze_normalizer(env, env_state["norm/mean"], env_state["norm/var"],
                          None if count is None else float(count))
    return env


def _make_sync(spec: gym.envs.registration.EnvSpec, num_envs: int, kwargs: dict[str, Any]) -> SyncVectorEnv:
    """What ``gym.make_vec(..., vectorization_mode="sync")`` builds, the sub-envs and the vector env's
    ``spec`` alike, with our ``envs.sync.SyncVectorEnv`` (a leaner step) in place of Gymnasium's."""
    vector_kwargs = {"autoreset_mode": AutoresetMode.NEXT_STEP}
    env = SyncVectorEnv([functools.partial(gym.make, spec, **kwargs)] * num_envs, **vector_kwargs)
    spec_kwargs = {**spec.kwargs, **kwargs} | ({"num_envs": num_envs} if num_envs != 1 else {})
    env.unwrapped.spec = dataclasses.replace(spec, kwargs=spec_kwargs | {"vectorization_mode": "sync",
                                                                         "vector_kwargs": vector_kwargs})
    return env
