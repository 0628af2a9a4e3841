"""The run directory: the one place that knows its layout. Everything else asks a ``RunDir``.

    {logdir}/{env}__{algo}__{seed}__{unix_time}/     CleanRL's name (``RunDir.name``)
        config.json                 {"algo", "run": RunConfig, "agent": the algorithm's config}
        result.json                 {"status", "step", "episodes", "total_steps", "final_eval"}, written
                                    when a session ends; status is done | target_reached | interrupted
        progress.csv                every logged scalar in long form: wall_time, step, tag, value
        events.out.tfevents.*       TensorBoard events (scalars, histograms, text, hparams)
        checkpoints/step_0000050000.npz   whole-run checkpoints, the newest ``keep`` of them

A checkpoint is ``rlnn.checkpoint.save_tree`` data: JSON metadata (format, version and the loop's state,
``agents.loop.LoopState``) and the arrays of the agent, the envs and the loop. It is written to a
temporary file and renamed, so the newest checkpoint is always whole.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from rlnn.checkpoint import TMP_SUFFIX, CheckpointError, load_tree, save_tree

FORMAT = "rlnn-run-checkpoint"
VERSION = 2          # 2: agents keep no env-step counter of their own (the loop's is the one)
FINISHED = ("done", "target_reached")
_STEP_FILE = re.compile(r"step_(\d+)\.npz$")


@dataclass
class EvalRecord:
    """One greedy evaluation: at env step ``step``, after ``elapsed`` training seconds."""

    step: int
    elapsed: float
    mean: float
    std: float


class RunDirError(CheckpointError):
    """Not a run directory, or one whose files cannot be read: a user-facing one-line error."""


class RunDir:
    """A run directory on disk (it need not exist yet)."""

    CONFIG, RESULT, PROGRESS, CHECKPOINTS = "config.json", "result.json", "progress.csv", "checkpoints"

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def __str__(self) -> str:
        return self.path

    # ------------------------------------------------------------------ naming
    @staticmethod
    def name(env_id: str, algo: str, seed: int, unix_time: int | None = None) -> str:
        """CleanRL's ``{env}__{algo}__{seed}__{time}`` (a "/" in an env id becomes "-")."""
        t = int(time.time()) if unix_time is None else unix_time
        return f"{env_id.replace('/', '-')}__{algo}__{seed}__{t}"

    @classmethod
    def create(cls, path: str) -> "RunDir":
        """Make the directory (and its parents) for a new run."""
        os.makedirs(path, exist_ok=True)
        return cls(path)

    @classmethod
    def find(cls, parent: str) -> list["RunDir"]:
        """The run directories (with a config.json) directly below ``parent``, sorted by name."""
        if not os.path.isdir(parent):
            return []
        return [cls(os.path.join(parent, d)) for d in sorted(os.listdir(parent))
                if os.path.isfile(os.path.join(parent, d, cls.CONFIG))]

    # ------------------------------------------------------------------ files
    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def progress_path(self) -> str:
        return self.file(self.PROGRESS)

    def is_run(self) -> bool:
        return os.path.isfile(self.file(self.CONFIG))

    def read_config(self) -> dict[str, Any]:
        """config.json as written by ``write_config``; RunDirError if this is not a run directory."""
        if not self.is_run():
            raise RunDirError(f"{self.path}: not a run directory (no {self.CONFIG})")
        return self._read_json(self.CONFIG)

    def write_config(self, config: dict[str, Any]) -> None:
        self._write_json(self.CONFIG, config)

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None while the run has not ended a session."""
        return self._read_json(self.RESULT) if os.path.isfile(self.file(self.RESULT)) else None

    def write_result(self, result: dict[str, Any]) -> None:
        self._write_json(self.RESULT, result)

    @property
    def status(self) -> str | None:
        """done | target_reached | interrupted, or None (never ended a session: running, killed or new)."""
        result = self.read_result()
        return None if result is None else result.get("status")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def _read_json(self, name: str) -> dict[str, Any]:
        try:
            with open(self.file(name)) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RunDirError(f"{self.file(name)}: unreadable ({e})") from None

    def _write_json(self, name: str, data: Any) -> None:
        write_json(self.file(name), data)

    def scalars(self, *tags: str) -> dict[str, dict[int, float]]:
        """{tag: {step: value}} from progress.csv (the values exactly as logged)."""
        out: dict[str, dict[int, float]] = {tag: {} for tag in tags}
        if not os.path.isfile(self.progress_path):
            return out
        with open(self.progress_path, newline="") as f:
            for row in csv.DictReader(f):
                if row["tag"] in out:
                    out[row["tag"]][int(row["step"])] = float(row["value"])
        return out

    def evals(self) -> list[EvalRecord]:
        """The greedy evaluations logged so far, in step order."""
        s = self.scalars("eval/episodic_return", "eval/episodic_return_std", "charts/elapsed_seconds")
        mean, std, elapsed = s["eval/episodic_return"], s["eval/episodic_return_std"], s["charts/elapsed_seconds"]
        return [EvalRecord(step, elapsed.get(step, float("nan")), mean[step], std.get(step, float("nan")))
                for step in sorted(mean)]

    # ------------------------------------------------------------- checkpoints
    def checkpoint_path(self, step: int) -> str:
        return os.path.join(self.path, self.CHECKPOINTS, f"step_{step:010d}.npz")

    def checkpoints(self) -> list[str]:
        """Checkpoint files, oldest first (by step)."""
        paths = [p for p in glob.glob(os.path.join(self.path, self.CHECKPOINTS, "step_*.npz"))
                 if _STEP_FILE.search(p)]
        return sorted(paths, key=lambda p: int(_STEP_FILE.search(p).group(1)))

    def has_checkpoint(self) -> bool:
        return bool(self.checkpoints())

    def latest_checkpoint(self) -> str:
        paths = self.checkpoints()
        if not paths:
            raise RunDirError(f"{self.path}: no checkpoints (expected {self.checkpoint_path(0).replace('0' * 10, '*')})")
        return paths[-1]

    def save_checkpoint(self, step: int, meta: dict[str, Any], arrays: dict[str, Any], keep: int) -> str:
        """Write the checkpoint of ``step``, then delete all but the newest ``keep``; returns its path."""
        path = self.checkpoint_path(step)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_tree(path, {"format": FORMAT, "version": VERSION, **meta}, arrays)
        self._prune(keep)
        return path

    def load_checkpoint(self, path: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, arrays) of ``path`` (default: the latest checkpoint); CheckpointError naming the file."""
        path = self.latest_checkpoint() if path is None else path
        meta, arrays = load_tree(path)
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise CheckpointError(f"{path}: format {meta.get('format')} v{meta.get('version')}, "
                                  f"this rlnn reads {FORMAT} v{VERSION}")
        return meta, arrays

    def _prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` checkpoints, and temporary files a crash left behind."""
        folder = os.path.join(self.path, self.CHECKPOINTS)
        for tmp in glob.glob(os.path.join(folder, ".*" + TMP_SUFFIX)):
            os.remove(tmp)
        paths = self.checkpoints()
        for p in paths[: max(0, len(paths) - max(1, keep))]:
            os.remove(p)


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON, written atomically (a temporary file, then ``os.replace``)."""
    tmp = path + TMP_SUFFIX
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
