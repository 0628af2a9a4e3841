"""What every running job is doing, shown while an executor runs them: one line per run with its latest
step out of its total, SPS, ETA, training return and greedy eval, read from the run directory's event
files (the logger flushes them every few seconds; ``progress.csv`` only at checkpoints).

On a terminal the lines are redrawn in place below the permanent output (``print``: "done ...");
otherwise (a pipe, a file, CI) they are printed as a plain block every ``every`` seconds. Either works
for any executor, as long as the run directories are readable here (a shared filesystem on a cluster).
The output stream is wrapped in ``agents.console.console_stream``: a reader that goes away (``rlnn compare
| head``) ends the output, not the command.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import time

from agents.console import console_stream
from agents.logger import EVENT_FILE_PREFIX
from agents.rundir import RunDir
from experiments.executor.job import Job, Outcome
from experiments.stats import compact

SHOWN = ("charts/SPS", "charts/episodic_return", "eval/episodic_return")


class _Run:
    """A running job's run directory, read incrementally: the latest value of each shown tag, and the step."""

    def __init__(self, job: Job):
        self.job, self.started = job, time.perf_counter()
        self.loaders: dict[str, object] = {}
        self.latest: dict[str, float] = {}
        self.step = 0
        self.total = job.total_steps

    def read(self) -> None:
        # The legacy loader yields the events as written (simple_value); the other one migrates them to tensors
        from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

        if self.total is None or self.job.resume:
            self.total = self._total() or self.total
        for path in sorted(glob.glob(os.path.join(self.job.run_dir, EVENT_FILE_PREFIX + "*"))):
            if path not in self.loaders:
                self.loaders[path] = LegacyEventFileLoader(path)
            try:
                for event in self.loaders[path].Load():
                    for value in event.summary.value:
                        self.step = max(self.step, int(event.step))
                        if value.tag in SHOWN:
                            self.latest[value.tag] = float(value.simple_value)
            except (OSError, ValueError):   # a record still being written: read again next time
                pass

    def _total(self) -> int | None:
        try:
            with open(os.path.join(self.job.run_dir, RunDir.CONFIG)) as f:
                return int(json.load(f)["run"]["total_steps"])
        except (OSError, ValueError, KeyError):     # not written yet
            return None

    def line(self) -> str:
        """The run's name (without the time stamp all runs of a command share), then the most telling
        numbers first, since a narrow terminal cuts the end."""
        g = self.latest.get
        parts = [self.job.name.rsplit("__", 1)[0]]
        if self.total:
            step = min(self.step, self.total)
            parts.append(f"{compact(step)}/{compact(self.total)} ({100 * step / self.total:.0f}%)")
        else:
            parts.append(compact(self.step))
        if not self.loaders:
            parts.append("starting")
        if "eval/episodic_return" in self.latest:
            parts.append(f"eval {g('eval/episodic_return'):.1f}")
        if "charts/episodic_return" in self.latest:
            parts.append(f"return {g('charts/episodic_return'):.1f}")
        sps = g("charts/SPS")
        if sps:
            parts.append(f"SPS {sps:,.0f}")
            if self.total and self.total > self.step:
                parts.append(f"ETA {duration((self.total - self.step) / sps)}")
        parts.append(f"{duration(time.perf_counter() - self.started)} in")
        return "  ".join(parts)


def duration(seconds: float) -> str:
    """45s, 12m, 2.5h."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


class RunProgress:
    """The executor's callbacks (``started``, ``ended``, ``tick``) showing every running run; ``print``
    writes a permanent line (above the redrawn block on a terminal)."""

    def __init__(self, stream=None, total: int = 0, every: float | None = None):
        self.stream = console_stream(stream or sys.stdout)
        self.tty = self.stream.isatty()
        self.every = every if every is not None else (1.0 if self.tty else 30.0)
        self.total, self.ended_count = total, 0
        self.runs: dict[str, _Run] = {}
        self.drawn = 0
        self.last = time.perf_counter()

    def started(self, job: Job) -> None:
        self.runs[job.run_dir] = _Run(job)

    def ended(self, outcome: Outcome) -> None:
        self.runs.pop(outcome.job.run_dir, None)
        self.ended_count += 1

    def print(self, line: str) -> None:
        self._erase()
        self.stream.write(line + "\n")
        if self.tty:
            self._draw()
        self.stream.flush()

    def tick(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.runs or (not force and now - self.last < self.every):
            return
        self.last = now
        for run in self.runs.values():
            run.read()
        self._erase()
        self._draw()
        self.stream.flush()

    def close(self) -> None:
        self._erase()
        self.stream.flush()

    def _lines(self) -> list[str]:
        lines = [f"  {run.line()}" for run in self.runs.values()]
        if self.tty:        # what fits on the screen
            room = max(1, shutil.get_terminal_size().lines - 3)
            if len(lines) > room:
                lines = lines[:room - 1] + [f"  ... and {len(lines) - room + 1} more running"]
            width = shutil.get_terminal_size().columns - 1
            lines = [line[:width] for line in lines]
        head = f"progress: {self.ended_count}/{self.total} run(s) ended, {len(self.runs)} running"
        return [head] + lines

    def _draw(self) -> None:
        if not self.runs:
            return
        lines = self._lines()
        self.stream.write("\n".join(lines) + "\n")
        self.drawn = len(lines) if self.tty else 0

    def _erase(self) -> None:
        if self.drawn:      # cursor up to the block's first line, clear to the end of the screen
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
