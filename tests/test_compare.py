"""``rlnn compare`` / ``rlnn report``: runs over seeds, numbers from event files, the plot, TensorBoard."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import numpy as np
import pytest
from conftest import ROOT, read_scalars, wait_for

from agents.rundir import RunDir
from experiments import executor
from experiments.cli import main
from experiments.compare import CompareSpec
from experiments.stats import area_under_curve, bootstrap_ci

TINY = ["--set", "run.eval_every=200", "--set", "run.eval_episodes=2", "--set", "run.checkpoint_every=200",
        "--set", "run.log_every=100", "--set", "run.num_envs=4", "--set", "dqn.learning_starts=100",
        "--set", "pg.rollout_steps=16"]


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("cmp")
    code = main(["compare", "--algos", "pg,dqn", "--seeds", "2", "--total-steps", "600", "--workers", "2",
                 "--logdir", str(logdir), *TINY])
    assert code == 0
    (parent,) = [logdir / d for d in os.listdir(logdir)]
    return parent


def test_compare_makes_one_run_dir_per_algo_and_seed(compare_dir):
    names = sorted(d for d in os.listdir(compare_dir) if "__" in d and os.path.isdir(compare_dir / d))
    assert [n.split("__")[1:3] for n in names] == [["dqn", "0"], ["dqn", "1"], ["pg", "0"], ["pg", "1"]]
    assert compare_dir.name.startswith("compare__CartPole-v1__")
    for name in names:
        scalars = read_scalars(str(compare_dir / name))
        assert {"eval/episodic_return", "charts/episodic_return", "charts/SPS"} <= set(scalars)
        assert RunDir(compare_dir / name).status == "done"
    spec = CompareSpec.read(str(compare_dir))
    assert spec.algos == ("pg", "dqn") and spec.seeds == (0, 1) and spec.total_steps == 600
    assert CompareSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_summary_numbers_equal_the_event_files(compare_dir):
    with open(compare_dir / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 4
    for row in runs:
        scalars = read_scalars(str(compare_dir / row["run"]))
        evals = scalars["eval/episodic_return"]
        assert float(row["final_eval"]) == pytest.approx(evals[-1][1])
        steps = np.array([s for s, _ in evals], dtype=float)
        values = np.array([v for _, v in evals])
        assert float(row["auc"]) == pytest.approx(area_under_curve(steps, values))
        solved = [s for s, v in evals if v >= 475]
        assert (row["solved"] == "True") == bool(solved)
    with open(compare_dir / "summary.csv") as f:
        summary = {r["algo"]: r for r in csv.DictReader(f)}
    assert set(summary) == {"pg", "dqn"}
    for algo, row in summary.items():
        finals = [float(r["final_eval"]) for r in runs if r["algo"] == algo]
        assert float(row["final_eval_mean"]) == pytest.approx(np.mean(finals))
        # 2 seeds: no interval (a bootstrap over 2 values only gives them back), and the table says why
        assert row["final_eval_ci_low"] == row["final_eval_ci_high"] == row["auc_ci_low"] == "nan"
        assert int(row["runs"]) == 2
    md = (compare_dir / "summary.md").read_text()
    assert "| pg |" in md and "| dqn |" in md and "[" not in md.split("| pg |")[1].splitlines()[0]
    assert "Only 2 seeds: too few for confident 95% intervals (rliable recommends at least 5-10 runs)" in md


def test_learning_curves_png_shows_every_algorithm_in_every_panel(compare_dir):
    from matplotlib.colors import to_rgb
    from PIL import Image

    with Image.open(compare_dir / "learning_curves.png") as img:
        img.verify()
    with Image.open(compare_dir / "learning_curves.png") as img:
        assert img.format == "PNG" and img.size[0] > 800 and img.size[1] > 300
        pixels = np.asarray(img.convert("RGB")).astype(int)
    w = pixels.shape[1]
    # Three panels side by side; algorithm i is drawn in colour Ci (mean line and its CI band). Only the
    # first panel has a legend, so in the others those colours are the curves.
    for c in range(3):
        panel = pixels[:, c * w // 3:(c + 1) * w // 3]
        for i in range(2):
            line = np.array(to_rgb(f"C{i}")) * 255
            assert (np.abs(panel - line).max(axis=-1) <= 12).sum() > 100, (c, i)


def test_report_remakes_the_same_table(compare_dir, capsys):
    before = (compare_dir / "summary.csv").read_text()
    os.remove(compare_dir / "summary.csv")
    assert main(["report", str(compare_dir)]) == 0
    assert (compare_dir / "summary.csv").read_text() == before
    assert "rlnn tensorboard " in capsys.readouterr().out


def test_bootstrap_ci_on_known_samples():
    assert bootstrap_ci([3.0] * 10) == (3.0, 3.0)
    assert all(np.isnan(bootstrap_ci([1.0, 5.0]))) and all(np.isnan(bootstrap_ci([1.0])))   # too few for one
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 2.0, size=400)
    lo, hi = bootstrap_ci(x)
    half = 1.96 * x.std() / np.sqrt(x.size)  # the normal-theory interval the bootstrap should approach
    assert lo == pytest.approx(x.mean() - half, abs=0.04) and hi == pytest.approx(x.mean() + half, abs=0.04)
    # Resampled means of [0, 0, 0, 10] are 2.5·k, k ~ Binomial(4, 1/4): P(k=0) = 0.32 > 2.5%, and
    # P(k >= 3) = 5.1% > 2.5% > P(k = 4) = 0.4%, so the 95% interval is exactly [0, 7.5].
    assert bootstrap_ci([0.0, 0.0, 0.0, 10.0]) == (0.0, 7.5)


def test_killed_worker_leaves_the_others_intact_and_resume_finishes(tmp_path, monkeypatch, capsys):
    original = executor.Job.command

    def kill_seed_1(job):
        if job.seed == 1 and not job.resume:
            return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
        return original(job)

    monkeypatch.setattr(executor.Job, "command", kill_seed_1)
    code = main(["compare", "--algos", "random", "--seeds", "3", "--total-steps", "400", "--workers", "2",
                 "--logdir", str(tmp_path), *TINY])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED  CartPole-v1__random__1__" in out
    (parent,) = [tmp_path / d for d in os.listdir(tmp_path)]
    done = {rd.path.split("__")[-2] for rd in RunDir.find(str(parent)) if rd.finished}
    assert done == {"0", "2"}
    monkeypatch.setattr(executor.Job, "command", original)
    assert main(["compare", "--resume", str(parent)]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) to do" in out
    done = {rd.path.split("__")[-2] for rd in RunDir.find(str(parent)) if rd.finished}
    assert done == {"0", "1", "2"}


def test_ctrl_c_in_the_report_phase_prints_the_resume_line(compare_dir, monkeypatch, capsys):
    import experiments.compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.compare, "report", interrupted)
    assert main(["compare", "--resume", str(compare_dir)]) == 130
    out = capsys.readouterr().out
    assert "0 run(s) to do" in out and f"rlnn compare --resume {compare_dir}" in out


def test_interrupted_reports_how_each_job_ended():
    jobs = [executor.Job("random", "CartPole-v1", s, f"/r/run{s}", "/r/logs") for s in range(3)]
    outcomes = [executor.Outcome(jobs[0], 0, 1.0), executor.Outcome(jobs[1], 130, 1.0), executor.Outcome(jobs[2], -9, 1.0)]
    assert [o.status for o in outcomes] == ["done", "stopped", "failed"]
    assert executor.Interrupted(outcomes, 4).summary() == "1 run(s) finished, 1 stopped, 1 failed, 4 not started"


def test_bad_seeds_and_algos_are_one_line_errors(capsys, tmp_path):
    for argv in (["compare", "--seeds", "x"], ["compare", "--algos", "pg,a2c"], ["compare", "--workers", "0"],
                 ["compare", "--env", "CartPol-v1"], ["compare", "--set", "run.env_kwargs={foo=1}"],
                 ["compare", "--backend", "local", "--address", "auto"], ["compare", "--progress", "-1"],
                 ["sweep", "--space", os.path.join(ROOT, "experiments", "sweeps", "cartpole_dqn.toml"),
                  "--env", "Pendulum-v1"]):
        assert main([*argv, "--logdir", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rlnn: error:") and "\n" not in err
    assert not os.listdir(tmp_path)  # nothing started


def test_backend_ray_without_ray_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "ray" or m.startswith(("ray.", "experiments.executor.ray"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)                   # import ray -> ModuleNotFoundError
    assert main(["compare", "--backend", "ray", "--logdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "rlnn: error: --backend ray needs Ray: pip install 'rlnn[ray]'\n"
    assert not os.listdir(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, **params):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_real_tensorboard_server_serves_every_run_and_tag(compare_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(compare_dir),
                             "--host", "127.0.0.1", "--port", str(port), "--samples_per_plugin", "scalars=100000",
                             "--reload_interval", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def served() -> bool:
            try:
                runs, tags = _get(port, "/data/runs"), _get(port, "/data/plugin/scalars/tags")
            except OSError:                          # not listening yet
                return False
            return len(runs) == 4 and all("eval/episodic_return" in tags.get(r, {}) for r in runs)

        wait_for(served, "TensorBoard serving every run's eval curve", timeout=90, proc=proc)
        runs, tags = _get(port, "/data/runs"), _get(port, "/data/plugin/scalars/tags")
        assert sorted(runs) == [os.path.basename(rd.path) for rd in RunDir.find(str(compare_dir))]
        documented = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
                      "eval/episodic_return", "eval/episodic_return_std", "losses/grad_norm"}
        per_algo = {"pg": {"losses/policy_loss", "losses/value_loss", "losses/entropy"},
                    "dqn": {"losses/td_loss", "losses/q_values", "charts/epsilon"}}
        for run in runs:
            algo = run.split("__")[1]
            ours = read_scalars(str(compare_dir / run))
            served_tags = set(tags[run])
            assert documented | per_algo[algo] <= served_tags
            for tag in documented | per_algo[algo]:
                points = _get(port, "/data/plugin/scalars/scalars", run=run, tag=tag)
                assert len(points) == len(ours[tag]), (run, tag)
                assert [p[1] for p in points] == [s for s, _ in ours[tag]]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class _Output:
    """A process's output lines, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(proc.stdout), daemon=True)
        self.thread.start()

    def text(self) -> str:
        self.thread.join(timeout=60)
        return "".join(self.lines)


def _long_compare(logdir, *extra: str) -> tuple[subprocess.Popen, list[RunDir], _Output]:
    """A compare whose two runs outlast the test, once both workers are running (their checkpoints exist)."""
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "compare", "--algos", "random", "--seeds", "2",
                             "--total-steps", "100000000", "--workers", "2", "--logdir", str(logdir),
                             "--set", "run.checkpoint_every=200", "--set", "run.log_every=100", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _Output(proc)

    def started() -> bool:
        assert proc.poll() is None, "compare ended early"
        return len(runs()) == 2 and all(rd.has_checkpoint() for rd in runs())

    runs = lambda: [rd for parent in logdir.glob("compare__*") for rd in RunDir.find(str(parent))]
    wait_for(started, "both workers' first checkpoints")
    return proc, runs(), output


def _worker_pid(rd: RunDir) -> int:
    with open(rd.file(RunDir.LOCK)) as f:     # the writer of a run directory leaves its pid in the lock file
        return int(f.read())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill_9_of_compare_stops_its_workers_cleanly(tmp_path):
    proc, runs, _ = _long_compare(tmp_path)
    pids = [_worker_pid(rd) for rd in runs]
    proc.kill()
    proc.wait()
    for pid in pids:
        wait_for(lambda pid=pid: _gone(pid), f"worker {pid} to end with its parent", timeout=60)
    for rd in runs:     # each worker got SIGTERM: it checkpointed and ended its session as interrupted
        assert rd.status == "interrupted" and rd.read_result()["step"] > 200


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_sigterm_of_compare_stops_every_worker_and_prints_the_resume_line(tmp_path, backend):
    proc, runs, output = _long_compare(tmp_path, "--backend", backend, "--progress", "0.2")

    def progress_of_both() -> bool:     # a line per running run with its step, once its events are flushed
        return all(re.search(rf"  {os.path.basename(rd.path).rsplit('__', 1)[0]}  [1-9][\d.]*k?/100M \(0%\)",
                             "".join(output.lines)) for rd in runs)

    wait_for(progress_of_both, "a progress line of each running run with its step", timeout=60, proc=proc)
    proc.terminate()
    assert proc.wait(timeout=60) == 130
    out = output.text()
    assert f"compare interrupted (0 run(s) finished, 2 stopped, 0 failed, 0 not started); finished runs are kept. " \
           f"Finish it with: rlnn compare --resume {os.path.dirname(runs[0].path)}" in out
    assert ("on Ray (local instance" in out) == (backend == "ray")
    assert all(rd.status == "interrupted" for rd in runs)


def test_every_option_of_compare_report_and_sweep_says_its_default():
    import argparse

    from experiments.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for command in ("compare", "report", "sweep"):
        for action in sub.choices[command]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (command, action.dest)
            if action.option_strings and action.nargs != 0:         # an option that takes a value
                assert "default" in action.help, (command, action.option_strings)
