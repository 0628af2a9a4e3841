"""Observation spaces an MLP can take, and their description as plain data.

An MLP reads a flat vector, so every observation space rlnn takes is flattened by Gymnasium's own
``FlattenObservation`` wrapper (``gymnasium.spaces.flatten``): a Box of any shape becomes its values in
row-major order, a Discrete(n) a one-hot vector of n, MultiDiscrete one one-hot block per entry,
MultiBinary its bits, and Tuple and Dict the concatenation of their parts. Spaces without a fixed flat
size (Text, Graph, Sequence, OneOf) are refused.

A run keeps its observation space as JSON (``space_to_dict``) so that a saved model flattens a raw
observation the same way in a process that never built the env (``Run.predict``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["needs_flatten", "unsupported_part", "space_to_dict", "space_from_dict", "flatten_batch"]

_LEAVES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def needs_flatten(space: gym.Space) -> bool:
    """Whether observations of ``space`` must be flattened before an MLP reads them."""
    return not (isinstance(space, spaces.Box) and len(space.shape) == 1)


def unsupported_part(space: gym.Space) -> gym.Space | None:
    """The first part of ``space`` with no fixed flat size, or None when an MLP can take all of it."""
    if isinstance(space, _LEAVES):
        return None
    if isinstance(space, spaces.Tuple):
        parts = space.spaces
    elif isinstance(space, spaces.Dict):
        parts = space.spaces.values()
    else:
        return space
    return next((bad for part in parts if (bad := unsupported_part(part)) is not None), None)


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON-able description of a space made of Box, Discrete, MultiDiscrete, MultiBinary, Tuple, Dict."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": space.dtype.name,
                "low": space.low.ravel().tolist(), "high": space.high.ravel().tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(s) for s in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_dict(s) for k, s in space.spaces.items()}}
    raise ValueError(f"observation space {space} has no flat size an MLP can take")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """The space ``space_to_dict`` described."""
    kind = data.get("type")
    if kind == "Box":
        shape, dtype = tuple(data["shape"]), np.dtype(data["dtype"])
        return spaces.Box(np.reshape(np.asarray(data["low"], dtype=dtype), shape),
                          np.reshape(np.asarray(data["high"], dtype=dtype), shape), shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"], start=data.get("start"))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Tuple":
        return spaces.Tuple([space_from_dict(s) for s in data["spaces"]])
    if kind == "Dict":
        return spaces.Dict({k: space_from_dict(s) for k, s in data["spaces"].items()})
    raise ValueError(f"not a space description: {data!r}")


def flatten_batch(space: gym.Space, obs: Any) -> tuple[np.ndarray, bool]:
    """(a (B, d) array of flat observations, whether ``obs`` was a batch) for raw observations of ``space``:
    one observation as the env returns it, or a batch (a list of them, or a Box batch with a leading axis).

    A flat Box needs no flattening: its observation is a (d,) array and a batch (B, d). TypeError for
    something that is not numbers at all, ValueError for an observation not in the space.
    """
    if not needs_flatten(space):
        d = space.shape[0]
        try:
            x = np.asarray(obs, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"observation is a {type(obs).__name__}: expected {d} numbers (one observation) "
                            f"or a batch of them, shape (batch, {d})") from None
        if x.ndim not in (1, 2) or x.shape[-1] != d:
            raise ValueError(f"observation of shape {x.shape}: expected ({d},) (one observation) or (n, {d})")
        return np.atleast_2d(x), x.ndim == 2
    if space.contains(_as_space_value(space, obs)):
        return spaces.flatten(space, _as_space_value(space, obs))[None, :], False
    if isinstance(obs, (list, tuple)) or (isinstance(obs, np.ndarray) and obs.ndim >= 1):
        rows = [_as_space_value(space, o) for o in obs]
        bad = next((o for o in rows if not space.contains(o)), None)
        if bad is None and rows:
            return np.stack([spaces.flatten(space, o) for o in rows]), True
    raise ValueError(f"observation {_short(obs)} is not in the run's observation space {space} "
                     f"(nor a batch of such observations)")


def _as_space_value(space: gym.Space, obs: Any) -> Any:
    """Plain Python values as the space holds them (an int for Discrete, arrays for Box...)."""
    if isinstance(space, spaces.Discrete) and isinstance(obs, (int, np.integer)) and not isinstance(obs, bool):
        return np.int64(obs)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)) and isinstance(obs, (list, tuple)):
        return np.asarray(obs, dtype=space.dtype)
    if isinstance(space, spaces.Tuple) and isinstance(obs, (list, tuple)) and len(obs) == len(space.spaces):
        return tuple(_as_space_value(s, o) for s, o in zip(space.spaces, obs))
    if isinstance(space, spaces.Dict) and isinstance(obs, dict):
        return {k: _as_space_value(space.spaces[k], obs[k]) if k in space.spaces else v for k, v in obs.items()}
    return obs


def _short(obs: Any) -> str:
    text = repr(obs)
    return text if len(text) <= 60 else text[:57] + "..."
