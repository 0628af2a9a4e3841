"""The logger and its sinks: TensorBoard event files, a CSV file, the console.

The logger knows nothing of TensorBoard; a sink does. Tag vocabulary (x-axis: global env step):

    charts/episodic_return, charts/episodic_length   one point per finished training episode
    charts/SPS, charts/learning_rate, charts/epsilon
    losses/td_loss, losses/q_values, losses/policy_loss, losses/value_loss, losses/entropy,
    losses/grad_norm
    eval/episodic_return, eval/episodic_return_std   greedy evaluation on a separate env

TensorBoard events are written with the ``tensorboard`` package's own ``EventFileWriter`` and protos
(no PyTorch, no TensorFlow). A resumed run writes a ``SessionLog.START`` event at the resume step, which
tells TensorBoard to drop points a crashed attempt (or the future a branch abandoned) wrote past the
checkpoint. A write that fails (a full disk) raises an OSError naming the sink's file, also when the
event writer's thread met it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

TAGS = (
    "charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
    "charts/epsilon", "losses/td_loss", "losses/q_values", "losses/policy_loss", "losses/value_loss",
    "losses/entropy", "losses/grad_norm", "eval/episodic_return", "eval/episodic_return_std",
)


def hparam_value(v: Any) -> Any:
    """A value as TensorBoard's HPARAMS tab takes it: None, lists and dicts as JSON, anything else as it is."""
    return json.dumps(v) if v is None or isinstance(v, (list, tuple, dict)) else v


def hparams_of(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json (``{"algo", "run": {...}, "agent": {...}}``) as flat ``section.key`` hparams."""
    flat = {"algo": config["algo"]}
    for section in ("run", "agent"):
        for k, v in config[section].items():
            flat[f"{section}.{k}"] = hparam_value(v)
    return flat


def markdown_table(hparams: dict[str, Any]) -> str:
    return "| parameter | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in hparams.items())


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """An OSError without a file name (a buffered write or a flush that hit a full disk) gets ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, path) from None


def _quiet_event_writer_threads() -> None:
    """Keep the event writer's thread from printing its write errors (a full disk) as a traceback.

    ``EventFileWriter`` writes from a thread that keeps its exception and re-raises it at the main
    thread's next ``add_event`` or ``flush``, where ``TensorBoardSink`` names the file in one line; the
    thread's own traceback on stderr would only say the same in 17 lines.
    """
    from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread

    previous = threading.excepthook
    if getattr(previous, "quiets_event_writers", False):
        return

    def hook(args) -> None:
        if not (isinstance(args.thread, _AsyncWriterThread) and issubclass(args.exc_type, OSError)):
            previous(args)

    hook.quiets_event_writers = True
    threading.excepthook = hook


class Sink(Protocol):
    def scalar(self, tag: str, value: float, step: int) -> None: ...
    def flush(self, durable: bool = False) -> None: ...
    def close(self) -> None: ...


EVENT_FILE_PREFIX = "events.out.tfevents."


def _wait_for_a_later_second(run_dir: str) -> None:
    """Return once the clock's second is not that of the newest event file in ``run_dir``.

    TensorBoard reads a run's event files in name order, and a name is the prefix, its writer's start
    second, host, pid and a counter. Two sessions started within one second sort by their pid and
    counter *strings* ("10" before "9"): the later session would be read first and its points purged by
    the earlier one's START event. Waiting out that second (at most one, and only when a session
    starts less than a second after the one before) keeps names in session order.
    """
    fields = [name[len(EVENT_FILE_PREFIX):].split(".")[0] for name in os.listdir(run_dir)
              if name.startswith(EVENT_FILE_PREFIX)]
    newest = max((int(field) for field in fields if field.isdigit()), default=None)
    while newest is not None and int(time.time()) == newest:
        time.sleep(0.01)


class TensorBoardSink:
    """Scalars, histograms, text and hparams into one event file of ``run_dir``, named to sort after the
    event files already there."""

    def __init__(self, run_dir: str, resume_step: int | None = None):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2 = event_pb2
        _quiet_event_writer_threads()
        if os.path.isdir(run_dir):
            _wait_for_a_later_second(run_dir)
        self.writer = EventFileWriter(run_dir, max_queue_size=1000, flush_secs=5)
        self.path = self.writer._file_name     # EventFileWriter has no public name for it; this one is stable
        # The first START marks the session; a later one (resume) purges stale points at >= its step.
        self._write(event_pb2.Event(
            wall_time=time.time(), step=0 if resume_step is None else resume_step + 1,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def _write(self, event) -> None:
        with _naming(self.path):
            self.writer.add_event(event)

    def _add(self, summary, step: int) -> None:
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._add(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]), step)

    def histogram(self, tag: str, values: np.ndarray, step: int, bins: int = 30) -> None:
        from tensorboard.compat.proto import summary_pb2

        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)):
            return
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-12
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        proto = summary_pb2.HistogramProto(
            min=lo, max=hi, num=float(values.size), sum=float(values.sum()),
            sum_squares=float(values @ values), bucket_limit=edges[1:].tolist(), bucket=counts.astype(float).tolist())
        self._add(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=proto)]), step)

    def text(self, tag: str, markdown: str, step: int) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        self._add(text_pb(tag, markdown), step)

    def hparams(self, hparams: dict[str, Any], start_time: float) -> None:
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
        self._add(hparams_pb(clean, start_time_secs=start_time), 0)

    def session_end(self, status: str) -> None:
        """The HPARAMS tab's end-of-session record: done -> success, interrupted -> unknown (it may be
        resumed; the proto has no "aborted"), anything else (diverged, crashed) -> failure."""
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        code = {"done": api_pb2.STATUS_SUCCESS, "interrupted": api_pb2.STATUS_UNKNOWN}.get(status, api_pb2.STATUS_FAILURE)
        data = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time()))
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
            tensor=metadata.NULL_TENSOR)])
        self._add(summary, 0)

    def flush(self, durable: bool = False) -> None:
        with _naming(self.path):
            self.writer.flush()
            if durable:
                _fsync(self.path)

    def close(self) -> None:
        try:
            self.flush()        # raises what the writer's thread met; close() alone would not
        finally:
            self.writer.close()


class CSVSink:
    """``progress.csv`` in long form (wall_time, step, tag, value): one row per point, any set of tags,
    appended to what the file holds (``agents.rundir.RunDir.branch`` cuts it to a resume's step first)."""

    FIELDS = ("wall_time", "step", "tag", "value")

    def __init__(self, path: str):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with _naming(path):
            self.file = open(path, "a", newline="")
            self.writer = csv.writer(self.file)
            if new:
                self.writer.writerow(self.FIELDS)

    def scalar(self, tag: str, value: float, step: int) -> None:
        with _naming(self.path):
            self.writer.writerow((f"{time.time():.3f}", int(step), tag, repr(float(value))))

    def flush(self, durable: bool = False) -> None:
        with _naming(self.path):
            self.file.flush()
            if durable:
                os.fsync(self.file.fileno())

    def close(self) -> None:
        with _naming(self.path):
            self.file.close()


@dataclass
class CSVRow:
    """A whole row of progress.csv, and its bytes as written (line terminator included)."""

    step: int
    tag: str
    value: float
    line: bytes


@dataclass
class CSVContent:
    """progress.csv read back: ``header`` and ``rows`` are whole; ``tail`` holds the file's bytes from
    line ``damaged_line`` on (1-based; None: nothing damaged), the first line that is not a whole row."""

    header: bytes
    rows: list[CSVRow]
    damaged_line: int | None = None
    tail: bytes = b""


def read_csv(path: str) -> CSVContent:
    """What ``CSVSink`` wrote to ``path``, up to the first line that is not a whole row: a last line
    without its line end (a full disk or a crash cut it), bytes that are not UTF-8, a wrong number of
    fields, a step or value that is not a number, or a damaged header."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return CSVContent(b"", [])
    lines = data.split(b"\n")
    whole, partial = [line + b"\n" for line in lines[:-1]], lines[-1]
    header = ",".join(CSVSink.FIELDS).encode()
    if not whole or whole[0].rstrip(b"\r\n") != header:
        return CSVContent(b"", [], 1, data)
    rows, offset = [], len(whole[0])
    for number, line in enumerate(whole[1:], start=2):
        row = _csv_row(line)
        if row is None:
            return CSVContent(whole[0], rows, number, data[offset:])
        rows.append(row)
        offset += len(line)
    if partial:
        return CSVContent(whole[0], rows, len(whole) + 1, partial)
    return CSVContent(whole[0], rows)


def _csv_row(line: bytes) -> CSVRow | None:
    try:
        fields = next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])
        if len(fields) != 4:
            return None
        wall_time, step, tag, value = fields
        float(wall_time)
        row = CSVRow(int(step), tag, float(value), line)
    except (UnicodeDecodeError, ValueError, csv.Error):
        return None
    return row if row.step >= 0 and row.tag else None


class ConsoleSink:
    """The progress display: steps of the total, elapsed time, ETA, SPS, the last training return, the last
    greedy evaluation and the main loss (the first ``losses/*`` tag the agent logs).

    On a terminal a tqdm bar redraws in place; elsewhere (CI, a pipe, a file) a plain line is printed
    every ``every_secs`` seconds so logs stay readable. The count never passes the total (a vector step
    may end a few transitions past it). Times count from where the current session started: a resumed
    run's ETA from its resume step.
    """

    def __init__(self, total_steps: int, stream=None, every_secs: float | None = None, start_step: int = 0):
        self.stream = stream or sys.stdout
        self.total, self.start_step = total_steps, start_step
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every_secs if every_secs is not None else (0.2 if self.tty else 10.0)
        self.latest: dict[str, float] = {}
        self.loss_tag: str | None = None
        self.step = start_step
        self.t0 = self._last_draw = time.monotonic()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=min(start_step, total_steps), file=self.stream,
                            unit="step", unit_scale=True, dynamic_ncols=True, mininterval=self.every,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.latest[tag] = float(value)
        if self.loss_tag is None and tag.startswith("losses/"):
            self.loss_tag = tag

    def _postfix(self) -> str:
        g, parts = self.latest.get, []
        if "charts/episodic_return" in self.latest:
            parts.append(f"return {g('charts/episodic_return'):.1f}")
        if "eval/episodic_return" in self.latest:
            parts.append(f"eval {g('eval/episodic_return'):.1f}±{g('eval/episodic_return_std', 0.0):.1f}")
        if self.loss_tag is not None:
            parts.append(f"{self.loss_tag.split('/')[-1]} {g(self.loss_tag):.3g}")
        return "  ".join(parts)

    def line(self) -> str:
        """The plain progress line (no terminal)."""
        from tqdm import tqdm

        shown = min(self.step, self.total)
        elapsed = time.monotonic() - self.t0
        sps = (self.step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = tqdm.format_interval((self.total - shown) / sps) if sps > 0 else "?"
        head = (f"{shown:,}/{self.total:,} steps ({100 * shown / max(1, self.total):.0f}%)  "
                f"elapsed {tqdm.format_interval(elapsed)}  ETA {eta}  SPS {sps:,.0f}")
        return "  ".join(p for p in (head, self._postfix()) if p)

    def tick(self, step: int | None = None, force: bool = False) -> None:
        if step is not None:
            self.step = step
        now = time.monotonic()
        if not force and now - self._last_draw < self.every:
            return
        self._last_draw = now
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.update(min(self.step, self.total) - self.bar.n)
            if force:
                self.bar.refresh()
        else:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def flush(self, durable: bool = False) -> None:
        pass

    def close(self) -> None:
        self.tick(force=True)
        if self.bar is not None:
            self.bar.close()


def tensorboard_command(logdir: str) -> str:
    """A command line that starts TensorBoard on ``logdir`` when pasted as printed: ``rlnn tensorboard``
    of this Python environment (plain ``rlnn`` when that is the one on PATH), else TensorBoard's own
    module run by this interpreter."""
    import shlex
    import shutil

    def shown(path: str) -> str:
        rel = os.path.relpath(path)
        return shlex.quote(rel if not rel.startswith("..") else path)

    rlnn = os.path.join(os.path.dirname(sys.executable), "rlnn")
    if os.path.isfile(rlnn):
        on_path = shutil.which("rlnn")
        prog = "rlnn" if on_path and os.path.realpath(on_path) == os.path.realpath(rlnn) else shown(rlnn)
        return f"{prog} tensorboard {shown(logdir)}"
    return f"{shown(sys.executable)} -m tensorboard.main --logdir {shown(logdir)}"


class Logger:
    """Fans scalars out to sinks; histograms, text and hparams go to the sinks that can show them."""

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)
        self._tickers = [sink.tick for sink in self.sinks if hasattr(sink, "tick")]

    @property
    def ticks(self) -> bool:
        """Whether ``tick()`` reaches a sink (a console); the loop skips the call per step otherwise."""
        return bool(self._tickers)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if not math.isfinite(float(value)):
            return
        for sink in self.sinks:
            sink.scalar(tag, value, step)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.scalar(tag, value, step)

    def _each(self, method: str, *args) -> None:
        for sink in self.sinks:
            if hasattr(sink, method):
                getattr(sink, method)(*args)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        self._each("histogram", tag, values, step)

    def text(self, tag: str, markdown: str, step: int) -> None:
        self._each("text", tag, markdown, step)

    def hparams(self, hparams: dict[str, Any], start_time: float) -> None:
        self._each("hparams", hparams, start_time)

    def tick(self, step: int | None = None, force: bool = False) -> None:
        """Let the console show ``step`` (it redraws at its own pace)."""
        for tick in self._tickers:
            tick(step, force)

    def session_end(self, status: str) -> None:
        self._each("session_end", status)

    def flush(self, durable: bool = False) -> None:
        """Everything written so far to the OS; with ``durable``, to the disk (fsync)."""
        for sink in self.sinks:
            sink.flush(durable)

    def close(self) -> None:
        """Close every sink; then raise the first error one of them met (a full disk, naming its file)."""
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def abort(self, status: str) -> None:
        """A session that failed: record ``status`` and close every sink, as far as each still can.
        Its errors are dropped: the one that stopped the session is already on its way up."""
        for sink in self.sinks:
            if hasattr(sink, "session_end"):
                with contextlib.suppress(Exception):
                    sink.session_end(status)
            with contextlib.suppress(Exception):
                sink.close()
