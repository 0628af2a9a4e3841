"""Building the vector envs rlnn trains and evaluates on, and checking that an env id is usable."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FlattenObservation, TimeLimit
from gymnasium.wrappers.vector import FlattenObservation as FlattenVectorObservation
from gymnasium.wrappers.vector import NormalizeObservation

from envs import cartpole, pendulum
from envs.source import EnvError, EnvMaker, check_user_env, is_gymnasiums_own, resolve
from envs.spaces import needs_flatten, unsupported_part
from envs.normalize import freeze_normalizer, obs_normalizer, sync_normalizer
from envs.sync import SyncVectorEnv
from envs.wrappers import EpisodeStatistics

__all__ = [
    "EnvError",
    "EnvMaker",
    "check_env_id",
    "check_spaces",
    "action_kind",
    "check_first_step",
    "make_vec_env",
    "make_eval_env",
    "make_eval_env_from_state",
    "check_observation_space",
    "raw_observation_space",
]


# Registered NumPy vector envs we replace with our own: the same dynamics bit for bit, a cheaper step.
OUR_VECTOR_ENVS = {"gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv": cartpole.ENTRY_POINT}
# Envs Gymnasium has no NumPy vector env for, by entry point, and ours: the same dynamics bit for bit.
OUR_VECTOR_ENVS_FOR = {"gymnasium.envs.classic_control.pendulum:PendulumEnv": pendulum.ENTRY_POINT}
# Gymnasium's own optional dependencies, as rlnn's extras (pyproject.toml) that install them.
EXTRAS = {"box2d": "box2d", "Box2D": "box2d", "pygame": "render"}
ACTION_KINDS = ("discrete", "continuous")
# A greedy policy can walk in circles forever where an env sets no time limit (CliffWalking, a user's
# env): evaluation episodes of such envs are cut after this many steps (truncated, their return so far).
EVAL_MAX_EPISODE_STEPS = 10_000


def check_env_id(env_id: str) -> None:
    """Raise EnvError (one line: close matches, the package or module to install or import) unless
    ``env_id`` names an env rlnn can make (``envs.source`` lists the forms)."""
    resolve(env_id)


def check_observation_space(space: gym.Space) -> None:
    """An MLP takes any space with a fixed flat size (``envs.spaces``); EnvError for the others."""
    bad = unsupported_part(space)
    if bad is not None:
        raise EnvError(f"observation space {space} is not supported: {type(bad).__name__} has no fixed flat size; "
                       "an MLP takes Box, Discrete, MultiDiscrete, MultiBinary and Tuple/Dict of them")


def action_kind(space: gym.Space) -> str:
    """"discrete" for Discrete(n), "continuous" for a Box of finite bounds; EnvError for anything else."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise EnvError(f"action space {space} is not supported: a Box of actions needs finite low and high")
        return "continuous"
    raise EnvError(f"action space {space} is not supported: rlnn's agents take Discrete or a float Box")


def check_spaces(observation_space: gym.Space, action_space: gym.Space,
                 action_kinds: tuple[str, ...] = ACTION_KINDS) -> str:
    """Check both spaces of an env; returns its action kind, EnvError if it is not in ``action_kinds``."""
    check_observation_space(observation_space)
    kind = action_kind(action_space)
    if kind not in action_kinds:
        wanted = "a Discrete" if action_kinds == ("discrete",) else "a float Box"
        raise EnvError(f"action space {action_space} is not supported: {wanted} action space is required")
    return kind


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
    maker: EnvMaker | None = None,
    evaluation: bool = False,
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """A NEXT_STEP vector env with episode statistics and flat observations (seed it with
    ``env.reset(seed=...)``).

    ``env_id``: any form ``envs.source`` lists; ``maker``: the objects that make the env when it was given
    as one (``env_id`` is then only its name), ``evaluation`` choosing the maker's evaluation envs.
    ``kwargs`` (``run.env_kwargs``) go to ``gym.make`` or to the env's class or function.
    ``vectorization_mode``: "auto" takes the registered NumPy vector env where one exists and
    ``num_envs >= 4``, else ``SyncVectorEnv``; "sync" and "vector_entry_point" force one.
    """
    if num_envs < 1:
        raise EnvError(f"num_envs={num_envs} is not allowed: it must be at least 1")
    if vectorization_mode not in ("auto", "sync", "vector_entry_point"):
        raise EnvError(f"vectorization_mode={vectorization_mode!r} is not allowed: use auto, sync or vector_entry_point")
    target = resolve(env_id) if maker is None else (maker.evaluation if evaluation else maker.train)
    if maker is not None and not evaluation and maker.max_envs is not None and num_envs > maker.max_envs:
        raise EnvError(f"run.num_envs = {num_envs}: the env is one instance, so 1 env; pass its class or a "
                       f"function that makes one for more")
    mode = vectorization_mode
    if isinstance(target, EnvSpec) and target.vector_entry_point is None and target.entry_point in OUR_VECTOR_ENVS_FOR:
        target = dataclasses.replace(target, vector_entry_point=OUR_VECTOR_ENVS_FOR[target.entry_point])
    if mode == "auto":
        # The NumPy vector env's cost is nearly fixed per call, the sync env's grows with n: the NumPy
        # env wins from about 4 envs on (CartPole; the figures are in docs/performance.md).
        has_vector = isinstance(target, EnvSpec) and target.vector_entry_point is not None
        mode = "vector_entry_point" if has_vector and num_envs >= 4 else "sync"
    env = _make(env_id, target, num_envs, mode, kwargs, check=not evaluation,
                checked=None if maker is None else maker.evaluation,
                limit=EVAL_MAX_EPISODE_STEPS if evaluation else None)
    if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
        raise EnvError(f"{env_id}: vector env autoreset mode {env.metadata.get('autoreset_mode')} is not NEXT_STEP")
    if needs_flatten(env.single_observation_space):     # a NumPy vector env with structured observations
        check_observation_space(env.single_observation_space)
        env = FlattenVectorObservation(env)
    env = EpisodeStatistics(env)
    if normalize_obs:
        env = NormalizeObservation(env)
    env.action_space.seed(seed)
    return env


def _make(env_id: str, target: EnvSpec | Callable[..., gym.Env], num_envs: int, mode: str,
          kwargs: dict[str, Any], check: bool, checked: Callable[[], gym.Env] | None = None,
          limit: int | None = None) -> gym.vector.VectorEnv:
    """The vector env in NEXT_STEP mode (ours where we have one), with Gymnasium's errors for missing
    packages and bad keyword arguments turned into one line that says what to do. ``check``: run
    Gymnasium's env checker on an env that is not Gymnasium's own (once per process), made by ``checked``
    if given (an instance's copy: the checker must not touch the instance itself). ``limit``: a time limit
    for sub-envs that have none."""
    try:
        if isinstance(target, EnvSpec):
            make_one = functools.partial(gym.make, target, **kwargs)
        else:
            make_one = functools.partial(target, **kwargs) if kwargs else target
        if check and not is_gymnasiums_own(target):
            check_user_env(env_id, lambda: _flat(make_one if checked is None else checked))
        if mode == "sync":
            return _make_sync(target if isinstance(target, EnvSpec) else None, make_one, num_envs, kwargs, limit)
        ours = OUR_VECTOR_ENVS.get(target.vector_entry_point)
        return gym.make_vec(target if ours is None else dataclasses.replace(target, vector_entry_point=ours),
                            num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except gym.error.DependencyNotInstalled as e:
        extra = next((x for key, x in EXTRAS.items() if key in str(e)), None)
        fix = f"pip install 'rlnn[{extra}]'" if extra else str(e).split(". ")[0]
        raise EnvError(f"{env_id} needs a package that is not installed: {fix}") from None
    except EnvError:
        raise
    except ModuleNotFoundError as e:    # the entry point's own import: phys2d/ and tabular/ envs need jax
        top = (e.name or "").split(".")[0]
        raise EnvError(f"{env_id} needs the package {top!r}, which is not installed: pip install {top}") from None
    except Exception as e:      # with env_kwargs: unexpected keyword arguments, values of a wrong type
        if not kwargs:
            raise
        raise _kwargs_error(env_id, kwargs, e) from None


def _flat(make_one: Callable[[], gym.Env], limit: int | None = None) -> gym.Env:
    """One env from ``make_one``, its observations flattened for an MLP when they are not a flat Box, and
    cut after ``limit`` steps when it has no time limit of its own."""
    env = make_one()
    if not isinstance(env, gym.Env):
        raise EnvError(f"the env factory returned {type(env).__name__}, not a gymnasium.Env")
    if limit is not None and not _has_time_limit(env):
        env = TimeLimit(env, limit)
    if needs_flatten(env.observation_space):
        check_observation_space(env.observation_space)
        env = FlattenObservation(env)
    return env


def make_eval_env(env_id: str, num_envs: int, train_env: gym.vector.VectorEnv | None = None,
                  maker: EnvMaker | None = None, **kwargs: Any) -> gym.vector.VectorEnv:
    """An env for greedy evaluation: one episode per sub-env, normalization frozen at the training stats."""
    normalizer = obs_normalizer(train_env) if train_env is not None else None
    env = make_vec_env(env_id, num_envs, seed=0, normalize_obs=normalizer is not None, maker=maker,
                       evaluation=True, **kwargs)
    if normalizer is not None:
        sync_normalizer(env, train_env)
    return env


def make_eval_env_from_state(env_id: str, num_envs: int, normalize_obs: bool, env_state: dict[str, np.ndarray],
                             maker: EnvMaker | None = None, **kwargs: Any) -> gym.vector.VectorEnv:
    """Like ``make_eval_env``, but with the statistics a checkpoint saved instead of a live training env.

    ``env_state`` is the flat dict ``env_state()`` returns. Without a saved ``norm/mean`` the
    normalizer (if ``normalize_obs``) keeps its fresh statistics and keeps updating them.
    """
    env = make_vec_env(env_id, num_envs, seed=0, normalize_obs=normalize_obs, maker=maker, evaluation=True,
                       **kwargs)
    if normalize_obs and "norm/mean" in env_state:
        count = env_state.get("norm/count")
        freeze_normalizer(env, env_state["norm/mean"], env_state["norm/var"],
                          None if count is None else float(count))
    return env


def _has_time_limit(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return True
        env = env.env
    return False


def _make_sync(spec: EnvSpec | None, make_one: Callable[[], gym.Env], num_envs: int,
               kwargs: dict[str, Any], limit: int | None = None) -> SyncVectorEnv:
    """What ``gym.make_vec(..., vectorization_mode="sync")`` builds, the sub-envs and the vector env's
    ``spec`` alike (none for an env that is not registered), with our ``envs.sync.SyncVectorEnv`` (a
    leaner step) in place of Gymnasium's, and observations flattened where an MLP needs it."""
    vector_kwargs = {"autoreset_mode": AutoresetMode.NEXT_STEP}
    env = SyncVectorEnv([functools.partial(_flat, make_one, limit)] * num_envs, **vector_kwargs)
    if spec is not None:
        spec_kwargs = {**spec.kwargs, **kwargs} | ({"num_envs": num_envs} if num_envs != 1 else {})
        spec_kwargs |= {"vectorization_mode": "sync", "vector_kwargs": vector_kwargs}
        if isinstance(env.envs[0], FlattenObservation):
            spec_kwargs["wrappers"] = [FlattenObservation]
        env.unwrapped.spec = dataclasses.replace(spec, kwargs=spec_kwargs)
    return env


def raw_observation_space(env: gym.vector.VectorEnv) -> gym.Space:
    """The observation space of one sub-env as the env itself defines it, before rlnn flattened it (what a
    user's observations look like; ``Run.predict`` flattens them the same way)."""
    layer = env
    while isinstance(layer, gym.vector.VectorWrapper):
        if isinstance(layer, FlattenVectorObservation):
            return layer.env.single_observation_space
        layer = layer.env
    subs = getattr(layer, "envs", None)
    if subs and isinstance(subs[0], FlattenObservation):
        return subs[0].env.observation_space
    return env.single_observation_space
