"""The run directory: the one place that knows its layout. Everything else asks a ``RunDir``.

    {logdir}/{env}__{algo}__{seed}__{unix_time}/     CleanRL's name (``RunDir.name``)
        config.json                 {"algo", "run": RunConfig, "agent": the algorithm's config}
        result.json                 {"status", "stop_reason", "step", "episodes", "total_steps", "final_eval"},
                                    written when a session ends; status is done | target_reached | stopped
                                    (a callback ended it) | interrupted; stop_reason says it in words
        progress.csv                every logged scalar in long form: wall_time, step, tag, value
        events.out.tfevents.*       TensorBoard events (scalars, histograms, text, hparams)
        checkpoints/step_0000050000.npz   whole-run checkpoints, the newest ``keep`` of them
        checkpoints/best.npz        the checkpoint of the best greedy evaluation so far
        abandoned/{unix_time}/      what a session set aside instead of deleting (``branch``, ``claim_new``):
                                    checkpoints/, progress.csv rows and result.json of an abandoned future

A session continues a run from one of its checkpoints, which becomes the end of the run's history
(``branch``): later checkpoints (a branch from an older checkpoint), progress.csv rows past its step (a
crash's, a branch's) and a damaged last row (a full disk's) are moved to ``abandoned/{unix_time}/``, so
``eval``, ``agents.load`` and the next resume see one timeline. TensorBoard drops the later points by
itself: the session's event file starts with a ``SessionLog.START`` at the step after the checkpoint's.
A new run in a directory that holds no checkpoint but an earlier attempt's files (a worker killed before
its first checkpoint) moves them aside the same way and starts a clean history.

A process that writes a run directory holds an exclusive lock on its ``.lock`` file (``RunDir.lock``): an
OS lock, released on any exit, ``kill -9`` included, so a second writer is refused with the first one's
process id instead of mixing its checkpoints and events into the run. Readers (eval, report) take no lock.

A checkpoint is ``rlnn.checkpoint.save_tree`` data: JSON metadata (format, version and the loop's state,
``agents.loop.LoopState``) and the arrays of the agent, the envs and the loop. It is written to a
temporary file and renamed, so the newest checkpoint is always whole.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from agents.logger import CSVContent, read_csv
from rlnn.checkpoint import TMP_SUFFIX, CheckpointError, load_tree, save_tree

FORMAT = "rlnn-run-checkpoint"
VERSION = 2          # 2: agents keep no env-step counter of their own (the loop's is the one)
FINISHED = ("done", "target_reached", "stopped")   # "stopped": a callback ended it on purpose
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

    CONFIG, RESULT, PROGRESS, CHECKPOINTS, LOCK = "config.json", "result.json", "progress.csv", "checkpoints", ".lock"
    ABANDONED = "abandoned"

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def __str__(self) -> str:
        return self.path

    # ------------------------------------------------------------------ naming
    @staticmethod
    def name(env_id: str, algo: str, seed: int, unix_time: int | None = None) -> str:
        """CleanRL's ``{env}__{algo}__{seed}__{time}``, the env by its short name (``envs.short_name``:
        "ALE/Pong-v5" -> "ALE-Pong-v5", "my_pkg.envs:LineWalk-v0" -> "LineWalk-v0")."""
        from envs import short_name

        t = int(time.time()) if unix_time is None else unix_time
        return f"{short_name(env_id)}__{algo}__{seed}__{t}"

    @classmethod
    def create_new(cls, logdir: str, env_id: str, algo: str, seed: int) -> "RunDir":
        """A directory no run has used, made atomically: ``name(...)``, or with ``_2``, ``_3``... appended
        when a run started in the same second took it."""
        make_dirs(logdir)
        return cls(_mkdir_unique(os.path.join(logdir, cls.name(env_id, algo, seed)), "run directory"))

    def claim_new(self) -> list[str]:
        """Make this (given) directory the home of a new run, locked: refused if it holds a run's checkpoints.
        An earlier attempt's progress.csv, result.json and best checkpoint are moved aside; returns lines
        saying so."""
        make_dirs(self.path)
        self.lock()
        if self.has_checkpoint():
            self.unlock()
            raise RunDirError(f"{self.path} already holds a run with checkpoints: resume it with --resume {self.path}")
        best = os.path.join(self.CHECKPOINTS, os.path.basename(self.best_checkpoint_path))
        left = [name for name in (self.PROGRESS, self.RESULT, best) if os.path.isfile(self.file(name))]
        if not left:
            return []
        aside = self._abandoned_dir()
        for name in left:
            os.makedirs(os.path.dirname(os.path.join(aside, name)), exist_ok=True)
            os.replace(self.file(name), os.path.join(aside, name))
        return [f"{self.path} held no checkpoint but an earlier attempt's {' and '.join(left)}: moved to "
                f"{aside}; this run starts a clean history"]

    # ------------------------------------------------------------------ lock
    def lock(self) -> None:
        """Hold the run directory's exclusive lock (until ``unlock`` or the process ends)."""
        try:
            fd = os.open(self.file(self.LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(f"cannot write in {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(f"{self.path} is in use by process {holder}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)     # closing releases the flock
            self._lock_fd = None

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
        return read_json(self.file(name))

    def _write_json(self, name: str, data: Any) -> None:
        write_json(self.file(name), data)

    def progress(self) -> CSVContent:
        """progress.csv's whole rows (and its damaged tail, if a full disk or a crash left one)."""
        return read_csv(self.progress_path) if os.path.isfile(self.progress_path) else CSVContent(b"", [])

    def scalars(self, *tags: str) -> dict[str, dict[int, float]]:
        """{tag: {step: value}} from progress.csv's whole rows (the values exactly as logged)."""
        out: dict[str, dict[int, float]] = {tag: {} for tag in tags}
        for row in self.progress().rows:
            if row.tag in out:
                out[row.tag][row.step] = row.value
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
        return sorted(paths, key=_step_of)

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

    def checkpoint_named(self, name: str) -> str:
        """The checkpoint file of ``name``: "latest", "best", "step_N" (with or without its zeros),
        "step_N.npz" or a path; RunDirError listing the others."""
        if name == "latest":
            return self.latest_checkpoint()
        number = re.fullmatch(r"step_(\d+)(\.npz)?", name)
        path = (self.checkpoint_path(int(number.group(1))) if number
                else name if os.sep in name else os.path.join(self.path, self.CHECKPOINTS, name))
        path = path if path.endswith(".npz") else path + ".npz"
        if not os.path.isfile(path):
            raise RunDirError(f"{path}: no such checkpoint; {self._listing()}")
        return path

    def _listing(self) -> str:
        names = [os.path.splitext(os.path.basename(p))[0] for p in self.checkpoints()]
        names += ["best"] if os.path.isfile(self.best_checkpoint_path) else []
        return f"this run has {', '.join(names)}" if names else "this run has no checkpoints"

    def load_checkpoint(self, path: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, arrays) of ``path`` (default: the latest checkpoint); CheckpointError naming the file,
        and, when it is unreadable, the older checkpoints one can resume from instead."""
        path = self.latest_checkpoint() if path is None else path
        try:
            meta, arrays = load_tree(path)
        except CheckpointError as e:
            older = [p for p in self.checkpoints() if p != path]
            if not older:
                raise
            step = os.path.splitext(os.path.basename(older[-1]))[0]
            raise CheckpointError(f"{e}; older checkpoints: {', '.join(os.path.basename(p) for p in older)} "
                                  f"(resume from one with --resume {self.path} --checkpoint {step})") from None
        return _checked_format(meta, path), arrays

    @property
    def best_checkpoint_path(self) -> str:
        """The checkpoint of the best greedy evaluation so far (``checkpoints/best.npz``), kept beside the
        latest ones and never pruned: SB3's EvalCallback habit, for runs that end below their best."""
        return os.path.join(self.path, self.CHECKPOINTS, "best.npz")

    def save_best_checkpoint(self, meta: dict[str, Any], arrays: dict[str, Any]) -> str:
        path = self.best_checkpoint_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_tree(path, {"format": FORMAT, "version": VERSION, **meta}, arrays)
        return path

    def branch(self, step: int) -> list[str]:
        """Make the checkpoint at ``step`` the end of this run's history, before a session continues from
        it: later checkpoints, progress.csv rows past ``step``, its damaged tail and a result.json of a
        later session end move to ``abandoned/{unix_time}/``; any other result.json is dropped (the
        session writes its own when it ends; until then the run is running or was killed). Returns lines
        saying what moved."""
        progress = self.progress()
        later = [p for p in self.checkpoints() if _step_of(p) > step]
        later += [self.best_checkpoint_path] if self._best_after(step) else []
        past = [row for row in progress.rows if row.step > step]
        damaged = progress.damaged_line is not None
        later_result = self._result_after(step)
        notes = []
        if damaged:
            notes.append(f"{self.progress_path}: line {progress.damaged_line:,} is not a whole row (a full disk or "
                         f"a crash cut it): the file is cut to the {len(progress.rows):,} whole rows before it")
        if later or past or damaged or later_result:
            aside = self._abandoned_dir()
            if later:
                os.makedirs(os.path.join(aside, self.CHECKPOINTS))
                for path in later:
                    os.replace(path, os.path.join(aside, self.CHECKPOINTS, os.path.basename(path)))
            if past or damaged:
                with open(os.path.join(aside, self.PROGRESS), "wb") as f:
                    f.write(progress.header + b"".join(row.line for row in past) + progress.tail)
                _write_bytes(self.progress_path, progress.header + b"".join(
                    row.line for row in progress.rows if row.step <= step))
            if later_result:
                os.replace(self.file(self.RESULT), os.path.join(aside, self.RESULT))
            moved = ([f"later checkpoints {', '.join(_stem(p) for p in later)}"] * bool(later)
                     + [f"{len(past):,} progress.csv rows past step {step:,}"] * bool(past)
                     + ["progress.csv's damaged tail"] * damaged + ["the result.json of a later end"] * later_result)
            listed = ", ".join(moved[:-1]) + " and " * (len(moved) > 1) + moved[-1]
            notes.append(f"the run continues from step {step:,}: {listed} moved to {aside}")
        if os.path.isfile(self.file(self.RESULT)):
            os.remove(self.file(self.RESULT))
        return notes

    def _best_after(self, step: int) -> bool:
        """Whether the best checkpoint is of a step after ``step`` (or unreadable)."""
        if not os.path.isfile(self.best_checkpoint_path):
            return False
        try:
            meta, _ = load_tree(self.best_checkpoint_path)
        except CheckpointError:
            return True
        return int(meta.get("loop", {}).get("step", 0)) > step

    def _result_after(self, step: int) -> bool:
        """Whether result.json records a session end after ``step`` (or cannot be read)."""
        if not os.path.isfile(self.file(self.RESULT)):
            return False
        try:
            end = self.read_result().get("step")
        except (RunDirError, AttributeError):
            return True
        return not isinstance(end, int) or end > step

    def _abandoned_dir(self) -> str:
        """A new ``abandoned/{unix_time}`` directory."""
        make_dirs(self.file(self.ABANDONED))
        return _mkdir_unique(os.path.join(self.file(self.ABANDONED), str(int(time.time()))), "directory")

    def _prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` checkpoints, and temporary files a crash left behind."""
        folder = os.path.join(self.path, self.CHECKPOINTS)
        for tmp in glob.glob(os.path.join(folder, ".*" + TMP_SUFFIX)):
            os.remove(tmp)
        paths = self.checkpoints()
        for p in paths[: max(0, len(paths) - max(1, keep))]:
            os.remove(p)


def read_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, arrays) of a run checkpoint file (a run's ``checkpoints/*.npz`` or a file ``Run.save``
    wrote); CheckpointError naming the file when it is unreadable or not one this rlnn reads."""
    meta, arrays = load_tree(path)
    return _checked_format(meta, path), arrays


def _checked_format(meta: dict[str, Any], path: str) -> dict[str, Any]:
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: format {meta.get('format')} v{meta.get('version')}, "
                              f"this rlnn reads {FORMAT} v{VERSION}")
    return meta


def _step_of(checkpoint: str) -> int:
    return int(_STEP_FILE.search(checkpoint).group(1))


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _mkdir_unique(base: str, what: str) -> str:
    """``base``, or ``base_2``, ``base_3``... if taken: made atomically, so two processes never share one."""
    for k in range(1, 10_000):
        path = base if k == 1 else f"{base}_{k}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise RunDirError(f"cannot create {what} {path}: {e.strerror}") from None
    raise RunDirError(f"{base}: no free {what} name")


def _write_bytes(path: str, data: bytes) -> None:
    """``data`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    tmp = path + TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def make_dirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, with RunDirError (a user mistake) when a path is in the way."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{path} is a file, not a directory for runs") from None
    except OSError as e:
        raise RunDirError(f"cannot create {path}: {e.strerror}") from None


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from ``path``; RunDirError naming the file when it cannot be read or is not one."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: unreadable (a JSON {type(data).__name__}, not an object)")
    return data


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON, written atomically (a temporary file, then ``os.replace``)."""
    _write_bytes(path, json.dumps(data, indent=2).encode())
