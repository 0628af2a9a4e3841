"""``experiments.executor``: the progress display of running runs, a closed stdout, the statistics' edge cases."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from conftest import ROOT

from agents.logger import TensorBoardSink
from agents.rundir import RunDir
from agents.console import console_stream
from experiments.executor import Job, Outcome, RunProgress
from experiments.executor.progress import duration
from experiments.stats import compact, few_runs_note, fmt_ci


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _running_run(tmp_path, name="Env-v0__algo__0__1700000000", step=300, total=1_000) -> Job:
    """A run directory as a running ``rlnn train`` leaves it: config.json and flushed event files."""
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / RunDir.CONFIG).write_text(json.dumps({"algo": "algo", "run": {"total_steps": total}}))
    sink = TensorBoardSink(str(run_dir))
    for s in range(100, step + 1, 100):
        sink.scalar("charts/episodic_return", 10.0 + s / 100, s)
        sink.scalar("charts/SPS", 50.0, s)
    sink.scalar("eval/episodic_return", 20.0, step)
    sink.flush()
    return Job("algo", "Env-v0", 0, str(run_dir), str(tmp_path / "logs"))


def test_progress_shows_each_running_run_from_its_event_files(tmp_path):
    out = io.StringIO()
    progress = RunProgress(out, total=3, every=0)
    a, b = _running_run(tmp_path), _running_run(tmp_path, "Env-v0__algo__1__1700000000", step=500)
    progress.started(a)
    progress.started(b)
    progress.tick()
    text = out.getvalue()
    assert "progress: 0/3 run(s) ended, 2 running" in text
    (line_a,) = [ln for ln in text.splitlines() if "Env-v0__algo__0 " in ln]
    assert line_a.startswith("  Env-v0__algo__0  300/1k (30%)  eval 20.0  return 13.0  SPS 50  ETA 14s  ")
    (line_b,) = [ln for ln in text.splitlines() if "Env-v0__algo__1 " in ln]
    assert "500/1k (50%)" in line_b
    progress.ended(Outcome(a, 0, 1.0))
    progress.print("  done    " + a.name)
    progress.tick()
    last = out.getvalue()[len(text):]
    assert "\x1b" not in out.getvalue()                 # not a terminal: plain lines only
    assert "progress: 1/3 run(s) ended, 1 running" in last and "Env-v0__algo__0 " not in last.split("progress:")[1]


def test_progress_on_a_terminal_redraws_its_block_below_the_permanent_lines(tmp_path):
    out = Terminal()
    progress = RunProgress(out, total=1, every=0)
    job = _running_run(tmp_path)
    progress.started(job)
    progress.tick()
    assert out.getvalue().count("\n") == 2              # the head line and one line per running run
    progress.print("  a permanent line")
    # the block (2 lines) erased, the line written, the block drawn again below it
    assert out.getvalue().split("\n", 2)[2].startswith("\x1b[2F\x1b[J  a permanent line\nprogress: 0/1")
    progress.close()
    assert out.getvalue().endswith("\x1b[2F\x1b[J")


def test_console_stream_survives_a_reader_that_went_away():
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = console_stream(os.fdopen(write_end, "w", buffering=1))
    stream.write("a line nobody reads\n")              # BrokenPipeError inside: silenced
    stream.flush()
    assert stream.silenced and not stream.isatty()
    stream.write("more\n")


NO_RAY = ("import sys; from experiments.cli import main; code = main(sys.argv[1:]); "
          "assert 'ray' not in sys.modules, 'the local executor imported Ray'; sys.exit(code)")


def test_compare_keeps_going_when_its_stdout_is_closed_and_needs_no_ray(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", NO_RAY, "compare", "--algos", "random", "--seeds", "2",
                             "--total-steps", "400", "--workers", "2", "--logdir", str(tmp_path), "--progress", "0",
                             "--set", "run.eval_every=200"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()                              # like `rlnn compare ... | head -1`
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert proc.stderr.read() == b""
    (parent,) = tmp_path.iterdir()
    assert all(rd.finished for rd in RunDir.find(str(parent))) and (parent / "summary.md").is_file()


def test_compact_step_ticks_and_interval_cells():
    assert [compact(x) for x in (0, 500, 20_000, 120_000, 1_500_000, 2e9)] == ["0", "500", "20k", "120k", "1.5M", "2G"]
    assert fmt_ci(1.0, float("nan"), float("nan")) == "1.0" and fmt_ci(1.0, 0.5, 2.0) == "1.0 [0.5, 2.0]"
    assert [duration(s) for s in (0.4, 89, 600, 9000)] == ["0s", "89s", "10m", "2.5h"]
    assert few_runs_note(10) is None and few_runs_note(5) is None
    assert few_runs_note(3).startswith("Only 3 seeds:") and "rough" in few_runs_note(3)
    assert few_runs_note(1, "run per env").startswith("Only 1 run per env:") and "left out" in few_runs_note(1)
