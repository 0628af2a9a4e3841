"""Checkpoints as data: ``.npz`` files of plain arrays, read with ``allow_pickle=False``, written atomically.

Two formats share one writer and one error class:

* a network (``save`` / ``load``), the layout below;
* a tree of arrays with JSON metadata (``save_tree`` / ``load_tree``), used for whole-run checkpoints:
  nested dicts are flattened with "/" in the keys and the metadata is a 0-d string array ``__meta__``.

Network file layout:

    config          uint8 array holding UTF-8 JSON: format version, the
                    network's sizes / activation names / dtype, and the
                    optimizer's type, step and hyperparameters (or null)
    flat_params     the network's parameter vector
    optimizer/NAME  each optimizer state array (moments, ...), if saved

Every file is written to a temporary file in the same directory, flushed to disk and renamed over
``path`` (os.replace), so a crash never leaves a half-written file under the final name; the file is
written to exactly ``path`` (no ``.npz`` is appended). Anything wrong with a file (missing, truncated,
corrupt, inconsistent shapes) raises :class:`CheckpointError` (a ValueError) naming the file.

``load(path) -> (net, optimizer_state)`` where optimizer_state is None or a dict for
``optimizer.load_state_dict``; together with the step counter that restores a run bit for bit.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from .mlp import MLP

__all__ = ["save", "load", "save_tree", "load_tree", "write_npz", "read_npz", "flatten", "unflatten",
           "CheckpointError", "FORMAT_VERSION", "TMP_SUFFIX"]

FORMAT_VERSION = 1
_OPT_PREFIX = "optimizer/"
_META = "__meta__"
TMP_SUFFIX = ".tmp"     # temporary files are ".{name}.{random}.tmp" beside the target


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or inconsistent."""


def save(path, net, optimizer=None):
    """Write ``net`` (and ``optimizer``'s state, if given) to ``path`` atomically.

    optimizer: an rlnn.optim optimizer (or its state_dict()) whose parameter
    vector is ``net.flat_params``.
    """
    path = os.fspath(path)
    state = net.state_dict()
    arrays = {"flat_params": state.pop("flat_params")}
    config = {"format": "rlnn-checkpoint", "version": FORMAT_VERSION, "net": state,
              "optimizer": None}
    if optimizer is not None:
        opt_state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else dict(optimizer)
        scalars = {}
        for key, value in opt_state.items():
            if isinstance(value, np.ndarray):
                if value.shape not in ((net.num_params(),), (0,)):
                    raise ValueError(f"optimizer state {key!r} has shape {value.shape}; "
                                     f"expected ({net.num_params()},): is it optimizing "
                                     f"this network's flat_params?")
                arrays[_OPT_PREFIX + key] = value
            else:
                scalars[key] = value
        config["optimizer"] = scalars
    text = json.dumps(config, sort_keys=True)
    arrays["config"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    write_npz(path, arrays)


def load(path):
    """Read a checkpoint written by :func:`save`.

    Returns ``(net, optimizer_state)``: a new MLP with the saved parameters,
    and the optimizer's state dict (or None if none was saved).  Raises
    CheckpointError naming ``path`` if the file cannot be used.
    """
    path = os.fspath(path)

    def fail(problem):
        return CheckpointError(f"cannot load checkpoint {path!r}: {problem}")

    arrays = read_npz(path)
    try:
        config = json.loads(arrays.pop("config").tobytes().decode("utf-8"))
    except KeyError:
        raise fail("no 'config' entry (not an rlnn checkpoint?)") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise fail(f"config is not valid JSON: {err}") from None
    if not isinstance(config, dict) or config.get("format") != "rlnn-checkpoint":
        raise fail("config does not describe an rlnn checkpoint")
    if config.get("version") != FORMAT_VERSION:
        raise fail(f"format version {config.get('version')!r}, this code reads {FORMAT_VERSION}")
    if "flat_params" not in arrays:
        raise fail("no 'flat_params' entry")
    try:
        net = MLP.from_state_dict(dict(config.get("net") or {},
                                      flat_params=arrays.pop("flat_params")))
    except (ValueError, TypeError) as err:
        raise fail(str(err)) from None

    opt_config = config.get("optimizer")
    if opt_config is None:
        return net, None
    if not isinstance(opt_config, dict):
        raise fail(f"optimizer config must be a JSON object, got {type(opt_config).__name__}")
    opt_state = dict(opt_config)
    for key, value in arrays.items():
        if not key.startswith(_OPT_PREFIX):
            continue
        if value.shape not in ((net.num_params(),), (0,)):
            raise fail(f"optimizer state {key[len(_OPT_PREFIX):]!r} has shape {value.shape}, "
                       f"expected ({net.num_params()},)")
        opt_state[key[len(_OPT_PREFIX):]] = value
    return net, opt_state


# ------------------------------------------------------------------ the shared file layer

def write_npz(path, arrays: dict) -> None:
    """``arrays`` (name -> array) to ``path`` atomically: temporary file, fsync, ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):      # a full disk says neither which file nor that the old one is intact
            raise OSError(e.errno, f"{e.strerror}; {os.path.basename(path)} not written, earlier files intact",
                          path) from None
        raise


def read_npz(path) -> dict:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``; CheckpointError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"cannot load checkpoint {path!r}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}   # reads (and CRC-checks) all
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"cannot load checkpoint {path!r}: not a readable .npz file "
                              f"(truncated or corrupt?): {err}") from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dicts of arrays and scalars -> {"a/b/c": array}; refuses anything that is not plain data."""
    out = {}
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


def unflatten(flat: dict) -> dict:
    """The inverse of :func:`flatten`."""
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def save_tree(path, meta: dict, tree: dict) -> None:
    """JSON-able ``meta`` and a nested dict of arrays ``tree`` to one ``.npz`` at ``path``, atomically."""
    flat = flatten(tree)
    flat[_META] = np.asarray(json.dumps(meta))
    write_npz(path, flat)


def load_tree(path) -> tuple:
    """(meta, tree) of a file written by :func:`save_tree`; CheckpointError naming the file and the problem."""
    flat = read_npz(path)
    if _META not in flat:
        raise CheckpointError(f"cannot load checkpoint {os.fspath(path)!r}: no {_META} entry")
    try:
        meta = json.loads(str(flat.pop(_META)))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"cannot load checkpoint {os.fspath(path)!r}: corrupt metadata ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"cannot load checkpoint {os.fspath(path)!r}: metadata is not a JSON object")
    return meta, unflatten(flat)
