"""Save and load a network (and optionally its optimizer state) as one ``.npz``.

File layout (a plain zip of .npy arrays, read with ``allow_pickle=False``):

    config          uint8 array holding UTF-8 JSON: format version, the
                    network's sizes / activation names / dtype, and the
                    optimizer's type, step and hyperparameters (or null)
    flat_params     the network's parameter vector
    optimizer/NAME  each optimizer state array (moments, ...), if saved

``save`` writes to a temporary file in the same directory and renames it over
``path`` (os.replace), so a crash never leaves a half-written checkpoint.
The file is written to exactly ``path`` (no ``.npz`` is appended).

``load(path) -> (net, optimizer_state)`` where optimizer_state is None or a
dict for ``optimizer.load_state_dict``; together with the step counter that
restores a run bit for bit.  Anything wrong with the file (missing,
truncated, corrupt, inconsistent shapes) raises :class:`CheckpointError`
(a ValueError) naming the file and the problem.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from .mlp import MLP

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_OPT_PREFIX = "optimizer/"


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

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read a checkpoint written by :func:`save`.

    Returns ``(net, optimizer_state)``: a new MLP with the saved parameters,
    and the optimizer's state dict (or None if none was saved).  Raises
    CheckpointError naming ``path`` if the file cannot be used.
    """
    path = os.fspath(path)

    def fail(problem):
        return CheckpointError(f"cannot load checkpoint {path!r}: {problem}")

    if not os.path.isfile(path):
        raise fail("no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}   # reads (and CRC-checks) all
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise fail(f"not a readable .npz file (truncated or corrupt?): {err}") from None
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
