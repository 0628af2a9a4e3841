"""Faults and bad input: branches, broken pipes, full disks, damaged files, sizes no machine has.

Each test names what a careful user did and what must hold: one line and exit 2 for a mistake, one
line and exit 1 for a failure, and nothing already written lost.
"""

from __future__ import annotations

import csv
import errno
import glob
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import ROOT, read_scalars, wait_for

import agents
from agents.loop import train
from agents.rundir import RunDir
from experiments.cli import main
from rlnn.checkpoint import flatten


def one_line(capsys, argv: list[str], code: int = 2) -> str:
    """Run ``rlnn argv``: its exit code must be ``code`` and its stderr one line without a traceback."""
    try:
        got = main(argv)
    except SystemExit as e:         # argparse's own errors
        got = e.code
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def progress_rows(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))


def abandoned(run_dir: str, *parts: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "abandoned", "*", *parts)))


# ------------------------------------------------------------------ one history per run

def test_a_branch_from_an_older_checkpoint_becomes_the_runs_only_history(small_run, capsys):
    run_dir = train("random", small_run(total_steps=2_000, eval_every=500, checkpoint_every=500,
                                        keep_checkpoints=10), console=False).run_dir
    assert main(["train", "--resume", run_dir, "--checkpoint", "step_1000", "--total-steps", "1500"]) == 0
    out = capsys.readouterr().out
    assert "step_0000001500, step_0000002000" in out and "moved to" in out
    steps = lambda paths: [int(os.path.basename(p)[5:-4]) for p in paths]
    assert steps(RunDir(run_dir).checkpoints()) == [500, 1000, 1500]            # the branch's own 1500
    assert steps(abandoned(run_dir, "checkpoints", "*.npz")) == [1500, 2000]    # the old future, kept aside
    assert agents.load(run_dir).step == 1500 and json.load(open(os.path.join(run_dir, "result.json")))["step"] == 1500
    rows = progress_rows(run_dir)
    assert max(int(r["step"]) for r in rows) == 1500
    assert len({(r["step"], r["tag"]) for r in rows}) == len(rows)
    assert min(int(r["step"]) for r in progress_rows(abandoned(run_dir)[0])) > 1000
    assert [s for s, _ in read_scalars(run_dir)["eval/episodic_return"]] == [500, 1000, 1500]
    # The next resume continues the branch, not the abandoned timeline.
    assert main(["train", "--resume", run_dir, "--total-steps", "2500", "--quiet"]) == 0
    assert [s for s, _ in read_scalars(run_dir)["eval/episodic_return"]] == [500, 1000, 1500, 2000, 2500]
    evals = [int(r["step"]) for r in progress_rows(run_dir) if r["tag"] == "eval/episodic_return"]
    assert evals == [500, 1000, 1500, 2000, 2500]


def test_a_worker_killed_before_its_first_checkpoint_is_rerun_with_a_clean_history(tmp_path, capsys):
    from experiments.executor import job_for

    run_dir = str(tmp_path / "run")
    worker = ["train", "--algo", "random", "--run-dir", run_dir, "--quiet", "--set", "run.eval_every=1000",
              "--set", "run.eval_episodes=2", "--set", "run.checkpoint_every=100000000"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", *worker, "--total-steps", "100000000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = os.path.join(run_dir, "progress.csv")
    best = os.path.join(run_dir, "checkpoints", "best.npz")
    wait_for(lambda: os.path.exists(best) and "eval/episodic_return" in open(progress).read(), "an evaluation",
             proc=proc)
    proc.kill()                                 # kill -9, before the first checkpoint
    proc.wait()
    killed_rows = len(progress_rows(run_dir))
    # What `rlnn compare --resume` plans for it: a new run into the same directory.
    job = job_for(RunDir(run_dir), algo="random", env="CartPole-v1", seed=0, log_dir=str(tmp_path))
    assert job is not None and not job.resume and job.run_dir == run_dir
    assert main([*worker, "--total-steps", "3000"]) == 0
    assert "starts a clean history" in capsys.readouterr().err                 # --quiet: notes on stderr
    assert os.path.isfile(os.path.join(abandoned(run_dir)[0], "checkpoints", "best.npz"))
    rows = progress_rows(run_dir)
    assert len({(r["step"], r["tag"]) for r in rows}) == len(rows)              # no row twice
    assert [int(r["step"]) for r in rows if r["tag"] == "eval/episodic_return"] == [1000, 2000, 3000]
    assert len(progress_rows(abandoned(run_dir)[0])) == killed_rows             # the attempt, kept aside
    for tag, points in read_scalars(run_dir).items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), tag


DAMAGE = {
    "partial last row": b"1796489491.123,2001,charts/SP",
    "bytes that are not UTF-8": b"\xff\xfe\x00garbage\r\n",
    "a row of three fields": b"1796489491.123,2001,charts/SPS\r\n",
    "a step that is not a number": b"1796489491.123,2x01,charts/SPS,12.5\r\n",
    "a garbage row before whole ones": b"###\r\n1796489491.123,2001,charts/SPS,12.5\r\n",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_tail_of_progress_csv_is_cut_on_resume_and_said_so(small_run, capsys, damage):
    run_dir = train("random", small_run(total_steps=600, eval_every=300, checkpoint_every=300), console=False).run_dir
    with open(os.path.join(run_dir, "progress.csv"), "ab") as f:
        f.write(DAMAGE[damage])
    assert main(["eval", run_dir, "--episodes", "1"]) == 0        # readers skip the damage
    assert main(["train", "--resume", run_dir, "--total-steps", "900"]) == 0
    assert "is not a whole row" in capsys.readouterr().out
    rows = progress_rows(run_dir)
    assert all(float(r["wall_time"]) and int(r["step"]) >= 0 and float(r["value"]) == float(r["value"])
               for r in rows)
    assert [int(r["step"]) for r in rows if r["tag"] == "eval/episodic_return"] == [300, 600, 900]
    assert open(abandoned(run_dir, "progress.csv")[0], "rb").read().endswith(DAMAGE[damage])


# ------------------------------------------------------------------ console and disk failures

def test_a_console_stream_whose_reader_left_goes_quiet():
    from agents.console import console_stream

    read, write = os.pipe()
    os.close(read)
    stream = console_stream(os.fdopen(write, "w"))
    print("one line", file=stream, flush=True)             # EPIPE: silenced, not raised
    assert stream.silenced
    print("and more", file=stream, flush=True)
    assert os.path.samestat(os.fstat(write), os.stat(os.devnull))      # the fd now writes nowhere
    stream.wrapped.close()


def test_a_closed_stdout_does_not_stop_training(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "train", "--algo", "random", "--total-steps",
                             "3000", "--run-dir", str(run_dir), "--set", "run.eval_every=1000",
                             "--set", "run.eval_episodes=2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"rlnn train:")
    proc.stdout.close()                                     # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""
    assert RunDir(str(run_dir)).status == "done" and RunDir(str(run_dir)).latest_checkpoint().endswith("3000.npz")


class FullDisk:
    """Writes to ``run_dir`` fail with ENOSPC (as a full disk: no file name) once it holds a checkpoint."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def __call__(self) -> None:
        if RunDir(self.run_dir).has_checkpoint():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["event writer thread", "progress.csv"])
def test_a_full_disk_while_logging_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, where):
    import agents.logger
    from tensorboard.compat.tensorflow_stub.io import gfile

    run_dir = str(tmp_path / "run")
    full = FullDisk(run_dir)
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)    # Python's: prints to stderr
    if where == "event writer thread":       # EventFileWriter's thread appends through this
        real_write = gfile.LocalFileSystem._write

        def write(fs, filename, content, mode):
            full()
            return real_write(fs, filename, content, mode)

        monkeypatch.setattr(gfile.LocalFileSystem, "_write", write)
    else:
        class FullFile:
            def __init__(self, f):
                self.f = f

            def write(self, text):
                full()
                return self.f.write(text)

            def __getattr__(self, name):
                return getattr(self.f, name)

        monkeypatch.setattr(agents.logger, "open", lambda *a, **k: FullFile(open(*a, **k)), raising=False)
    err = one_line(capsys, ["train", "--algo", "random", "--total-steps", "100000", "--run-dir", run_dir, "--quiet",
                            "--set", "run.checkpoint_every=500", "--set", "run.log_every=100"], code=1)
    path = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))[0] if where != "progress.csv" else \
        os.path.join(run_dir, "progress.csv")
    assert err.startswith(f"rlnn: error: {path}: No space left on device")
    assert "last good checkpoint step_" in err and "Exception in thread" not in err
    assert RunDir(run_dir).load_checkpoint()[0]["loop"]["step"] >= 500
    monkeypatch.undo()                       # space is free again: the run resumes from its checkpoint
    assert main(["train", "--resume", run_dir, "--total-steps", "1500", "--quiet"]) == 0
    assert RunDir(run_dir).status == "done"


# ------------------------------------------------------------------ resume, exact or not

@pytest.mark.parametrize("env_id, exact", [("CartPole-v1", True), ("Acrobot-v1", True), ("MountainCar-v0", True),
                                           ("LunarLander-v3", False)])
def test_resume_says_whether_it_continues_bit_for_bit(small_run, capsys, env_id, exact):
    cfg = dict(env_id=env_id, seed=2, num_envs=2, checkpoint_every=300, eval_episodes=0)
    split = train("random", small_run(total_steps=300, **cfg), console=False).run_dir
    assert main(["train", "--resume", split, "--total-steps", "700", "--quiet"]) == 0
    (note,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: resumed at step 300")]
    assert ("not bit for bit" not in note) == exact and "bit for bit" in note
    if not exact:
        assert env_id in note and "episodes in progress restart" in note
        return
    whole = train("random", small_run(total_steps=700, **cfg), console=False).run_dir
    state = lambda run_dir: flatten(RunDir(run_dir).load_checkpoint()[1])
    a, b = state(split), state(whole)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)     # envs, counters, obs, RNG
    returns = lambda run_dir: read_scalars(run_dir).get("charts/episodic_return")
    assert returns(split) == returns(whole)


# ------------------------------------------------------------------ one line instead of a traceback

def test_config_files_whose_tables_are_not_tables_are_one_line(small_run, capsys, tmp_path):
    for text, key in (("run = 5\n", "run = 5"), ('algo = "pg"\nagent = 5\n', "agent = 5")):
        (tmp_path / "bad.toml").write_text(text)
        assert key in one_line(capsys, ["train", "--config", str(tmp_path / "bad.toml"), "--logdir", str(tmp_path)])
    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    config = os.path.join(run_dir, "config.json")
    good = json.load(open(config))
    for saved, says in ((dict(good, run=5), "run is 5, not a table"), ({"algo": "random", "agent": {}}, "run is missing")):
        json.dump(saved, open(config, "w"))
        for argv in (["train", "--resume", run_dir, "--total-steps", "600"], ["eval", run_dir]):
            assert says in one_line(capsys, argv)


def test_damaged_plans_of_compare_and_sweep_are_one_line(tmp_path, capsys):
    from experiments.compare import CompareSpec
    from experiments.sweep.spec import SweepSpec
    from experiments.sweep.trials import Trial

    compare = tmp_path / "compare"
    compare.mkdir()
    CompareSpec("CartPole-v1", ("random",), (0,), 300, (), 1).write(str(compare))
    text = (compare / "compare.json").read_text()
    (compare / "compare.json").write_text(text[: len(text) // 2])
    assert "compare.json: unreadable" in one_line(capsys, ["compare", "--resume", str(compare)])
    (compare / "compare.json").write_text(json.dumps({"env": 5}))
    assert "compare.json: not a compare plan" in one_line(capsys, ["compare", "--resume", str(compare)])

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    space = os.path.join(ROOT, "experiments", "sweeps", "cartpole_dqn.toml")
    (sweep / "space.toml").write_text(open(space).read())
    SweepSpec("dqn", "CartPole-v1", (0,), 1, 300, (), "random", 0, "none", "auc", 475.0, "local", None, 1,
              space).write(str(sweep))
    trial = Trial(str(sweep), 0)
    trial.write_params({"agent.lr": 1e-3})
    open(trial.file("trial.json"), "w").write('{"trial": 0, "status": "do')
    err = one_line(capsys, ["sweep", "--resume", str(sweep)])
    assert "trial_000/trial.json: unreadable" in err and "sweep --resume" in err
    (sweep / "sweep.json").write_text("{")
    assert "sweep.json: unreadable" in one_line(capsys, ["sweep", "--resume", str(sweep)])


@pytest.mark.parametrize("algo, key, value", [("pg", "run.num_envs", "1e12"), ("pg", "agent.hidden_sizes", "[1000000000]"),
                                              ("dqn", "agent.buffer_size", "1e12"), ("pg", "run.eval_episodes", "1e12")])
def test_sizes_no_machine_has_are_refused_before_allocating(monkeypatch, capsys, tmp_path, algo, key, value):
    import agents.registry

    monkeypatch.setattr(agents.registry, "physical_memory", lambda: 16 * 2**30)    # the same on every machine
    logdir = tmp_path / "runs"
    err = one_line(capsys, ["train", "--algo", algo, "--set", f"{key}={value}", "--logdir", str(logdir)])
    assert err.startswith(f"rlnn: error: {key} = ") and "would need at least" in err
    assert "more than this machine's 16.0 GiB of physical memory" in err
    assert not logdir.exists()


def test_check_gradients_refuses_sizes_no_machine_has_too(monkeypatch, capsys):
    import agents.registry

    monkeypatch.setattr(agents.registry, "physical_memory", lambda: 16 * 2**30)
    err = one_line(capsys, ["check-gradients", "--algo", "dqn", "--set", "agent.hidden_sizes=[1000000000]"])
    assert err.startswith("rlnn: error: agent.hidden_sizes = [1000000000]: this run would need at least")


def test_env_kwargs_of_a_wrong_type_leave_no_run_directory(capsys, tmp_path):
    logdir = tmp_path / "runs"
    for kwargs in ('{max_episode_steps="a"}', "{render_mode=5}"):
        for num_envs in ("1", "8"):         # the sync env and the NumPy vector env
            err = one_line(capsys, ["train", "--algo", "pg", "--set", f"run.env_kwargs={kwargs}",
                                    "--set", f"run.num_envs={num_envs}", "--logdir", str(logdir)])
            assert f"run.env_kwargs = {{'{kwargs[1:].split('=')[0]}'" in err and "does not take them" in err
    assert not logdir.exists()


def test_arguments_out_of_range_are_one_line(small_run, capsys):
    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    assert "--seed: -1 is not allowed" in one_line(capsys, ["eval", run_dir, "--seed", "-1"])
    assert "--batch-size: 0 is not allowed" in one_line(capsys, ["check-gradients", "--algo", "pg", "--batch-size", "0"])
    assert "--eps: 0.0 is not allowed" in one_line(capsys, ["check-gradients", "--algo", "pg", "--eps", "0"])
    assert "--search-seed: -1" in one_line(capsys, ["sweep", "--space", "x.toml", "--search-seed", "-1"])


def test_a_file_in_the_place_of_a_directory_is_one_line_in_every_command(small_run, capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    space = os.path.join(ROOT, "experiments", "sweeps", "cartpole_dqn.toml")
    for argv in (["train", "--algo", "random", "--logdir", str(a_file)],
                 ["compare", "--algos", "random", "--seeds", "1", "--logdir", str(a_file)],
                 ["sweep", "--space", space, "--seeds", "1", "--trials", "1", "--logdir", str(a_file)]):
        assert f"{a_file} is a file, not a directory for runs" in one_line(capsys, argv)
    run_dir = train("random", small_run(total_steps=300), console=False).run_dir
    gif = str(a_file / "episode.gif")
    assert f"--gif {gif}: no directory" in one_line(capsys, ["eval", run_dir, "--gif", gif])


@pytest.mark.parametrize("env_id", ["phys2d/CartPole-v1", "tabular/Blackjack-v0"])
def test_an_env_whose_package_is_missing_names_it(monkeypatch, capsys, tmp_path, env_id):
    monkeypatch.setitem(sys.modules, "jax", None)       # missing here, whatever this machine has installed
    err = one_line(capsys, ["train", "--env", env_id, "--logdir", str(tmp_path)])
    assert f"{env_id} needs the package 'jax'" in err and "pip install jax" in err


def test_duplicate_seeds_are_refused_before_anything_starts(capsys, tmp_path):
    err = one_line(capsys, ["compare", "--algos", "random", "--seeds", "1,1", "--logdir", str(tmp_path / "c")])
    assert "seed 1 is given twice" in err
    space = os.path.join(ROOT, "experiments", "sweeps", "cartpole_dqn.toml")
    err = one_line(capsys, ["sweep", "--space", space, "--seeds", "0,2,0", "--logdir", str(tmp_path / "s")])
    assert "seed 0 is given twice" in err
    assert not os.listdir(tmp_path)


def test_the_script_api_raises_one_line_type_errors(small_run):
    run = agents.load(train("random", small_run(total_steps=300), console=False).run_dir)
    for call, says in ((lambda: run.predict({"a": 1}), "observation is a dict"), (lambda: run.evaluate(1.5), "episodes=1.5"),
                       (lambda: agents.load(None), "path=None"),
                       (lambda: agents.train("random", set="agent.lr=1e-3"), "set='agent.lr=1e-3'")):
        with pytest.raises(TypeError) as e:
            call()
        assert says in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"shape \(2,\): expected \(4,\) \(one observation\) or \(n, 4\)"):
        run.predict([0.0, 1.0])
    assert run.predict(np.zeros(4))[0] in (0, 1)


# ------------------------------------------------------------------ the benchmark's pool

def test_a_job_handed_to_a_worker_after_the_stop_never_starts(tmp_path):
    # Ctrl-C can land in the scheduling loop between handing a job to a worker thread and recording it:
    # the stop cannot see that job, so the worker must not start its process after the stop.
    from experiments.executor.job import Job, Processes

    processes = Processes()
    processes.terminate()
    job = Job("random", "CartPole-v1", 0, run_dir=str(tmp_path / "run"), log_dir=str(tmp_path / "logs"))
    outcome = processes.run(job)
    assert outcome.status == "stopped" and not os.path.exists(job.run_dir) and not processes.procs


def sigint_as_in_a_terminal() -> None:
    """SIGINT's default action, as a terminal's foreground job has it: a suite started in the background by
    a non-interactive shell inherits SIGINT ignored, and the bench (which keeps Python's default) would
    then never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_bench_agents_with_one_worker_stops_on_ctrl_c_and_sigterm(tmp_path, how):
    logdir = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, os.path.join("experiments", "bench_agents.py"), "--algo", "pg",
                             "--seeds", "0-2", "--total-steps", "100000000", "--logdir", str(logdir),
                             "--set", "run.checkpoint_every=100000000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    csvs = lambda: glob.glob(str(logdir / "CartPole-v1__*" / "progress.csv"))
    wait_for(lambda: csvs() and "charts/episodic_return" in open(csvs()[0]).read(), "seed 0 training", proc=proc)
    run_dir = os.path.dirname(csvs()[0])
    worker = int(open(os.path.join(run_dir, ".lock")).read())
    if how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)       # the terminal signals the whole process group
    else:
        proc.send_signal(signal.SIGTERM)         # the bench alone
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "bench interrupted" in err and "| seed |" not in out
    assert [os.path.basename(d) for d in glob.glob(str(logdir / "CartPole-v1__*"))] == [os.path.basename(run_dir)]
    assert RunDir(run_dir).status == "interrupted" and RunDir(run_dir).has_checkpoint()
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
