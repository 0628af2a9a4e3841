"""The ``rlnn`` command: one-line errors for user mistakes, Ctrl-C, eval, list, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, read_scalars, wait_for

from agents.loop import train
from agents.rundir import RunDir
from experiments.cli import main


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("rlnn: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_unknown_config_key_names_the_allowed_keys(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--algo", "random", "--set", "run.totl_steps=5", "--logdir", str(tmp_path)])
    assert "totl_steps" in err and "total_steps" in err


def test_wrong_value_type_names_key_and_type(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--algo", "random", "--set", "run.num_envs=lots", "--logdir", str(tmp_path)])
    assert "run.num_envs" in err and "int" in err


def test_bad_toml_file_key(capsys, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('algo = "random"\n[run]\ntotal_steps = 100\nlearning_rate = 0.1\n')
    err = one_line_error(capsys, ["train", "--algo", "random", "--config", str(cfg), "--logdir", str(tmp_path)])
    assert "run.learning_rate" in err and "allowed keys" in err


def test_out_of_range_value(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--algo", "random", "--total-steps", "0", "--logdir", str(tmp_path)])
    assert "run.total_steps = 0" in err


def test_unknown_env_id_lists_close_matches(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--algo", "random", "--env", "CartPol-v1", "--logdir", str(tmp_path)])
    assert "'CartPol-v1'" in err and "CartPole-v1" in err


def test_an_action_space_the_algorithm_cannot_take_is_refused(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--algo", "dqn", "--env", "Pendulum-v1", "--logdir", str(tmp_path)])
    assert "dqn needs a Discrete action space" in err and "Box(-2.0, 2.0, (1,), float32)" in err
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path)


def test_corrupt_and_truncated_checkpoints_give_one_line(capsys, small_run):
    from agents.loop import train

    result = train("random", small_run(total_steps=500), console=False)
    path = RunDir(result.run_dir).latest_checkpoint()
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    err = one_line_error(capsys, ["eval", result.run_dir, "--episodes", "2"])
    assert os.path.basename(path) in err and "truncated or corrupt" in err
    err = one_line_error(capsys, ["train", "--resume", result.run_dir])
    assert os.path.basename(path) in err
    open(path, "wb").write(b"not a zip file at all")
    err = one_line_error(capsys, ["eval", result.run_dir])
    assert "truncated or corrupt" in err


def test_eval_list_and_version(capsys, small_run):
    from agents.loop import train

    result = train("random", small_run(total_steps=500), console=False)
    assert main(["eval", result.run_dir, "--episodes", "5"]) == 0
    out = capsys.readouterr().out
    assert "greedy return over 5 episodes" in out and "±" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}\n" in out for name in ("random", "pg", "ppo", "dqn"))
    from agents import config

    listed = {line.split()[0]: line for line in out.splitlines() if "algo=" in line}
    assert set(listed) == set(config.presets()) and "env=Pendulum-v1" in listed["pendulum_ppo"]
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "rlnn" in capsys.readouterr().out


def test_train_then_resume_from_the_command_line(capsys, tmp_path):
    logdir = str(tmp_path / "runs")
    assert main(["train", "--algo", "random", "--total-steps", "600", "--logdir", logdir, "--seed", "5",
                 "--set", "run.eval_every=300", "--set", "eval_episodes=2"]) == 0
    out = capsys.readouterr().out
    (watch,) = [line for line in out.splitlines() if line.startswith("watch: ")]
    assert watch.endswith(f"tensorboard {os.path.relpath(logdir)}") or watch.endswith(f"tensorboard {logdir}")
    (run_dir,) = [os.path.join(logdir, d) for d in os.listdir(logdir)]
    assert main(["train", "--resume", run_dir, "--total-steps", "1200", "--quiet"]) == 0
    evals = [s for s, _ in read_scalars(run_dir)["eval/episodic_return"]]
    assert evals == [300, 600, 900, 1200]


def test_the_printed_tensorboard_command_serves_the_runs(tmp_path, small_run):
    """The watch: line's command, run as printed (here with a free port), starts TensorBoard on the runs."""
    import shlex
    import subprocess
    import sys

    from agents.logger import tensorboard_command

    train("random", small_run(total_steps=300), console=False)
    argv = shlex.split(tensorboard_command(str(tmp_path / "runs"))) + ["--port", "0"]
    if argv[0] == "rlnn":                                   # on PATH in a user's shell; here, this venv's
        argv[0] = os.path.join(os.path.dirname(sys.executable), "rlnn")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=os.getcwd())
    try:
        lines = []
        wait_for(lambda: lines.append(proc.stdout.readline()) or "http://" in lines[-1], "TensorBoard's address",
                 proc=proc)
        assert "TensorBoard" in lines[-1]
    finally:
        proc.terminate()
        proc.wait()


def test_tensorboard_of_a_missing_directory_is_one_line(capsys, tmp_path):
    err = one_line_error(capsys, ["tensorboard", str(tmp_path / "nowhere")])
    assert "no such directory" in err


def test_ctrl_c_leaves_a_loadable_checkpoint_and_exits_130(tmp_path):
    logdir = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "train", "--algo", "random",
                             "--total-steps", "100000000", "--logdir", str(logdir), "--set", "run.checkpoint_every=10000000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def episodes_logged() -> bool:   # an observable state: the run has stepped and logged an episode
        csvs = list(logdir.glob("*/progress.csv")) if logdir.exists() else []
        return bool(csvs) and "charts/episodic_return" in csvs[0].read_text()

    wait_for(episodes_logged, "a logged episode")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in out
    (run_dir,) = list(logdir.iterdir())
    meta, state = RunDir(str(run_dir)).load_checkpoint()
    assert meta["loop"]["step"] > 0 and "agent" in state
    # The events written before the signal are on disk and readable.
    assert read_scalars(str(run_dir))["charts/episodic_return"]


@pytest.mark.parametrize("algo", ["pg", "dqn"])
def test_eval_of_a_learning_agent_with_another_number_of_envs(capsys, small_run, algo):
    from agents.loop import train

    result = train(algo, small_run(total_steps=300, num_envs=4, eval_episodes=0), console=False)
    assert main(["eval", result.run_dir, "--episodes", "3"]) == 0
    assert "greedy return over 3 episodes" in capsys.readouterr().out


def test_train_says_which_preset_it_used_or_that_there_is_none(capsys, tmp_path, monkeypatch):
    import dataclasses

    import gymnasium as gym

    logdir = str(tmp_path / "runs")
    assert main(["train", "--algo", "pg", "--total-steps", "64", "--logdir", logdir, "--set", "run.eval_episodes=0"]) == 0
    out = capsys.readouterr().out
    assert "(preset cartpole_pg)" in out and "no preset" not in out
    # CartPole under an id no preset names
    spec = dataclasses.replace(gym.spec("CartPole-v1"), id="NoPresetPole-v0")
    monkeypatch.setitem(gym.registry, "NoPresetPole-v0", spec)
    assert main(["train", "--algo", "pg", "--env", "NoPresetPole-v0", "--total-steps", "64", "--logdir", logdir,
                 "--set", "run.eval_episodes=0"]) == 0
    assert "no preset for pg on NoPresetPole-v0" in capsys.readouterr().out
