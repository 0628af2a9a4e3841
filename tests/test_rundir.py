"""Run directories under concurrency, crashes, full disks and bad input: nothing lost, nothing mixed up."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
from conftest import ROOT, accumulator, wait_for

import agents.loop as loop
from agents.loop import TrainingDiverged, train
from agents.random import RandomAgent, RandomConfig
from agents.rundir import RunDir, RunDirError
from experiments.cli import main


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    got = main(argv)
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert err.startswith("rlnn: error: ") and "\n" not in err and "Traceback" not in err
    return err


def strictly_increasing_tags(run_dir: str) -> None:
    acc = accumulator(run_dir)
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        assert all(a < b for a, b in zip(steps, steps[1:])), (tag, steps)


# ------------------------------------------------------------------ data mixed up or lost

def test_two_runs_started_in_the_same_second_get_their_own_directories(small_run, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    a = train("random", small_run(total_steps=300), console=False)
    b = train("random", small_run(total_steps=300), console=False)
    assert a.run_dir != b.run_dir
    assert os.path.basename(a.run_dir) == "CartPole-v1__random__0__1800000000"
    assert os.path.basename(b.run_dir) == "CartPole-v1__random__0__1800000000_2"
    assert RunDir(b.run_dir).checkpoints() and len(RunDir(a.run_dir).checkpoints()) == 1


def test_a_second_writer_is_refused_while_the_first_runs_and_allowed_after_kill_9(small_run, tmp_path, capsys):
    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from agents.rundir import RunDir; "
                               f"RunDir({run_dir!r}).lock(); print('locked', flush=True); sys.stdin.read()"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = one_line_error(capsys, ["train", "--resume", run_dir, "--total-steps", "600"])
        assert err == f"rlnn: error: {run_dir} is in use by process {holder.pid}"
        with pytest.raises(RunDirError, match="in use"):
            train("random", small_run(total_steps=300), run_dir=run_dir, console=False)
    finally:
        holder.kill()            # SIGKILL: the OS releases the lock
        holder.wait()
    assert main(["train", "--resume", run_dir, "--total-steps", "600", "--quiet"]) == 0


def test_a_new_run_never_reuses_a_directory_holding_checkpoints(small_run, capsys):
    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    err = one_line_error(capsys, ["train", "--algo", "random", "--run-dir", run_dir])
    assert "already holds a run" in err and f"--resume {run_dir}" in err


def test_kill_9_loses_nothing_written_before_the_checkpoint_and_resume_is_exact(tmp_path):
    sets = ["--set", "run.checkpoint_every=3000", "--set", "run.eval_every=500", "--set", "run.log_every=100",
            "--set", "run.num_envs=2"]
    whole = tmp_path / "whole"
    assert main(["train", "--algo", "pg", "--seed", "4", "--total-steps", "9000", "--run-dir", str(whole),
                 "--quiet", *sets]) == 0
    killed = tmp_path / "killed"
    proc = cli("train", "--algo", "pg", "--seed", "4", "--total-steps", "9000", "--run-dir", str(killed), "--quiet",
               *sets)
    wait_for(lambda: RunDir(str(killed)).checkpoints(), "the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (path,) = RunDir(str(killed)).checkpoints()[-1:]
    at = int(os.path.basename(path)[5:-4])
    rows = lambda d: [(r[1], r[2], r[3]) for r in (line.split(",") for line in open(d / "progress.csv").read().splitlines()[1:])
                      if int(r[1]) <= at and not r[2].startswith("charts/")]
    assert rows(killed) == rows(whole) and len(rows(whole)) > 50      # every row up to the checkpoint is on disk
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    strictly_increasing_tags(str(killed))
    final = lambda d: RunDir(str(d)).evals()[-1]
    assert (final(killed).step, final(killed).mean) == (final(whole).step, final(whole).mean)


# ------------------------------------------------------------------ resume with changes

def test_resume_may_change_learning_rates_and_records_it_but_not_the_network(small_run, capsys):
    cfg = small_run(total_steps=600, num_envs=2)
    run_dir = train("dqn", cfg, console=False).run_dir
    err = one_line_error(capsys, ["train", "--resume", run_dir, "--set", "agent.hidden_sizes=[8]"])
    assert "agent.hidden_sizes cannot change when resuming" in err
    for flag, name in ((["--seed", "3"], "seed"), (["--env", "Acrobot-v1"], "env"), (["--config", "x.toml"], "config")):
        assert f"{name} cannot change" in one_line_error(capsys, ["train", "--resume", run_dir, *flag])
    assert main(["train", "--resume", run_dir, "--total-steps", "1200", "--set", "agent.lr=1e-4", "--quiet"]) == 0
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["agent"]["lr"] == 1e-4 and saved["run"]["total_steps"] == 1200
    (change,) = saved["history"]
    assert change["changes"]["agent.lr"] == [1e-3, 1e-4] and 600 <= change["step"] < 602
    assert "config_changes" in accumulator(run_dir).PluginTagToContent("text")
    strictly_increasing_tags(run_dir)


def test_resuming_a_finished_run_writes_nothing(small_run, capsys):
    run_dir = train("random", small_run(total_steps=600), console=False).run_dir
    data = lambda: {n: os.path.getmtime(os.path.join(run_dir, n)) for n in os.listdir(run_dir) if n != ".lock"}
    before = data()
    for total in ("600", "300"):
        assert main(["train", "--resume", run_dir, "--total-steps", total]) == 0
        assert "already at step 600" in capsys.readouterr().out
    assert data() == before
    assert json.load(open(os.path.join(run_dir, "result.json")))["total_steps"] == 600
    strictly_increasing_tags(run_dir)


def test_every_tag_strictly_increases_and_the_session_end_is_recorded(small_run):
    cfg = small_run(total_steps=2_000, eval_every=500, log_every=500, num_envs=1)   # logging meets evaluation
    run_dir = train("random", cfg, console=False).run_dir
    strictly_increasing_tags(run_dir)
    train("random", small_run(total_steps=3_000, eval_every=500, log_every=500), run_dir=run_dir, resume=True,
          console=False)
    strictly_increasing_tags(run_dir)
    acc = accumulator(run_dir)
    assert "_hparams_/session_end_info" in acc.summary_metadata


# ------------------------------------------------------------------ one line instead of a traceback

def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(small_run, monkeypatch, capsys, tmp_path):
    import rlnn.checkpoint

    real, calls = rlnn.checkpoint.np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
        real(f, **arrays)

    monkeypatch.setattr(rlnn.checkpoint.np, "savez", savez)
    run_dir = str(tmp_path / "full")
    err = one_line_error(capsys, ["train", "--algo", "random", "--total-steps", "1500", "--run-dir", run_dir,
                                  "--set", "run.checkpoint_every=500", "--quiet"], code=1)
    assert "No space left on device" in err and "checkpoints" in err
    files = os.listdir(os.path.join(run_dir, "checkpoints"))
    assert files == ["step_0000000500.npz"]                            # no temporary file left behind
    assert RunDir(run_dir).load_checkpoint()[0]["loop"]["step"] == 500


def test_a_read_only_place_is_one_line_for_a_new_run_and_a_resume(small_run, monkeypatch, capsys, tmp_path):
    import agents.rundir

    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    real_open, real_mkdir = os.open, os.mkdir

    def read_only(real):
        def refuse(path, *args, **kwargs):
            if str(path).startswith(str(tmp_path)):   # root ignores permission bits: a read-only mount says EROFS
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
            return real(path, *args, **kwargs)
        return refuse

    monkeypatch.setattr(agents.rundir.os, "open", read_only(real_open))
    monkeypatch.setattr(agents.rundir.os, "mkdir", read_only(real_mkdir))
    err = one_line_error(capsys, ["train", "--algo", "random", "--logdir", str(tmp_path / "ro")])
    assert "Read-only file system" in err and str(tmp_path / "ro") in err
    err = one_line_error(capsys, ["train", "--resume", run_dir, "--total-steps", "600"])
    assert "Read-only file system" in err and run_dir in err


def test_missing_packages_bad_kwargs_and_bad_paths_are_one_line(capsys, tmp_path, monkeypatch):
    def needs_box2d(**kwargs):
        raise gym.error.DependencyNotInstalled('Box2D is not installed, you can install it by run `pip install swig`')

    monkeypatch.setitem(gym.registry, "FakeLander-v0", gym.envs.registration.EnvSpec("FakeLander-v0", needs_box2d))
    logdir = str(tmp_path / "runs")
    assert "pip install 'rlnn[box2d]'" in one_line_error(capsys, ["train", "--env", "FakeLander-v0", "--logdir", logdir])
    assert "pip install ale-py" in one_line_error(capsys, ["train", "--env", "ALE/Pong-v5", "--logdir", logdir])
    err = one_line_error(capsys, ["train", "--algo", "random", "--set", "run.env_kwargs={foo=1}", "--logdir", logdir])
    assert "run.env_kwargs" in err and "foo" in err
    assert not os.path.exists(logdir)                                   # nothing was created for them
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is a file" in one_line_error(capsys, ["train", "--algo", "random", "--logdir", str(a_file)])
    assert "not allowed" in one_line_error(capsys, ["train", "--set", "agent.lr=inf", "--logdir", logdir])
    config = tmp_path / "dqn.toml"
    config.write_text('algo = "dqn"\n[run]\ntotal_steps = 0\n')
    assert "run.total_steps = 0" in one_line_error(capsys, ["train", "--config", str(config), "--logdir", logdir])


def test_corrupt_run_files_are_one_line(small_run, capsys):
    from rlnn.checkpoint import save_tree

    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    config_path = os.path.join(run_dir, "config.json")
    good = open(config_path).read()
    open(config_path, "w").write("{not json")
    assert "config.json" in one_line_error(capsys, ["eval", run_dir])
    open(config_path, "w").write('{"run": {}}')
    assert "no algo" in one_line_error(capsys, ["train", "--resume", run_dir, "--total-steps", "600"])
    open(config_path, "w").write(good)
    rd = RunDir(run_dir)
    meta, arrays = rd.load_checkpoint()
    del meta["loop"]["step"]
    save_tree(rd.latest_checkpoint(), meta, arrays)
    assert "loop state lacks step" in one_line_error(capsys, ["train", "--resume", run_dir, "--total-steps", "600"])


def test_a_corrupt_latest_checkpoint_names_the_older_ones_and_resume_can_pick_one(small_run, capsys):
    run_dir = train("random", small_run(total_steps=1_500, checkpoint_every=500), console=False).run_dir
    latest = RunDir(run_dir).latest_checkpoint()
    open(latest, "wb").write(b"garbage")
    err = one_line_error(capsys, ["train", "--resume", run_dir, "--total-steps", "2000"])
    assert "step_0000000500.npz, step_0000001000.npz" in err and "--checkpoint step_0000001000" in err
    assert main(["train", "--resume", run_dir, "--checkpoint", "step_0000001000", "--total-steps", "2000",
                 "--quiet"]) == 0
    assert "note: resumed at step 1,000" in capsys.readouterr().err        # --quiet: the note on stderr
    err = one_line_error(capsys, ["train", "--resume", run_dir, "--checkpoint", "step_7"])
    assert "no such checkpoint" in err and "step_0000002000" in err


class EarlyNaN(RandomAgent):
    def learn(self, step):
        return {"losses/td_loss": float("nan") if step > 100 else 1.0}


def test_divergence_before_any_checkpoint_says_none_was_written(small_run, monkeypatch):
    monkeypatch.setattr(loop, "get_algo", lambda name: (RandomConfig, EarlyNaN))
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        train("nan", small_run(checkpoint_every=500, log_every=50), console=False)


def test_interrupted_run_says_so_instead_of_a_final_eval(tmp_path):
    logdir = tmp_path / "runs"
    proc = cli("train", "--algo", "random", "--total-steps", "100000000", "--logdir", str(logdir),
               "--set", "run.eval_every=200", "--set", "run.eval_episodes=1")
    wait_for(lambda: any(RunDir(str(d)).evals() for d in logdir.glob("*")), "a first evaluation")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "final greedy eval" not in out and "interrupted at step" in out
    assert np.isfinite(RunDir(str(next(logdir.glob("*")))).evals()[-1].mean)
