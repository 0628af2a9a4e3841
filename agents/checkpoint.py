"""Whole-run checkpoints: one ``.npz`` per checkpoint, data only, written atomically.

Layout of ``RUN_DIR/checkpoints/step_0000050000.npz``:

    __meta__        JSON (as a 0-d string array): format, version, algo, step, counters, configs
    agent/...       the agent's ``state_dict()`` (networks, optimizers, RNG, buffers, schedules)
    env/...         ``envs.env_state``: physical env state, RNG, episode statistics, obs normalization
    loop/...        the loop's own arrays (current observation, done mask)

Nested dicts are flattened with "/" in the keys. Loaded with ``allow_pickle=False``: a checkpoint is data
and can never run code. Written to a temporary file in the same directory, then ``os.replace``d, so a
crash while writing never leaves a half-written file under the final name.
"""

from __future__ import annotations

import glob
import json
import os
import re
import zipfile
from typing import Any

import numpy as np

FORMAT = "rlnn-run-checkpoint"
VERSION = 1
_NAME = re.compile(r"step_(\d+)\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or does not match the run."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"checkpoint entry {name!r} is not plain data ({type(value).__name__})")
            out[name] = arr
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def save(path: str, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write ``meta`` (JSON-able) and ``arrays`` (nested dict of arrays) to ``path`` atomically."""
    flat = flatten(arrays)
    flat["__meta__"] = np.asarray(json.dumps({"format": FORMAT, "version": VERSION, **meta}))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **flat)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, nested arrays) of a checkpoint; CheckpointError naming the file and the problem."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {e})") from None
    if "__meta__" not in flat:
        raise CheckpointError(f"{path}: not an rlnn run checkpoint (no __meta__ entry)")
    try:
        meta = json.loads(str(flat.pop("__meta__")))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt metadata ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: format {meta.get('format')} v{meta.get('version')}, expected {FORMAT} v{VERSION}")
    return meta, unflatten(flat)


def checkpoint_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "checkpoints", f"step_{step:010d}.npz")


def list_checkpoints(run_dir: str) -> list[str]:
    """Checkpoint files of a run, oldest first (by step)."""
    paths = [p for p in glob.glob(os.path.join(run_dir, "checkpoints", "step_*.npz")) if _NAME.search(p)]
    return sorted(paths, key=lambda p: int(_NAME.search(p).group(1)))


def latest_checkpoint(run_dir: str) -> str:
    paths = list_checkpoints(run_dir)
    if not paths:
        raise CheckpointError(f"{run_dir}: no checkpoints (expected {os.path.join(run_dir, 'checkpoints', 'step_*.npz')})")
    return paths[-1]


def prune(run_dir: str, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and stray temporary files)."""
    for tmp in glob.glob(os.path.join(run_dir, "checkpoints", "*.tmp*")):
        os.remove(tmp)
    paths = list_checkpoints(run_dir)
    for p in paths[: max(0, len(paths) - max(1, keep))]:
        os.remove(p)
