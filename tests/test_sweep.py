"""``rlnn sweep``: the search-space parser, a tiny sweep end to end on both backends, resume after Ctrl-C."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tomli_w
from conftest import ROOT, accumulator, read_scalars, wait_for

from agents.config import ConfigError, build
from agents.rundir import RunDir
from experiments import executor
from experiments.cli import main
from experiments.stats import area_under_curve
from experiments.sweep.space import load_space, parse_space
from experiments.sweep.spec import SweepSpec, trial_config, trial_document
from experiments.sweep.trials import Trial

SPACE = """
algo = "dqn"
[agent]
lr = { loguniform = [1e-4, 3e-3] }
batch_size = { choice = [16, 32] }
hidden_sizes = { choice = [[32], [64, 64]] }
gamma = { uniform = [0.9, 0.99] }
target_update_interval = { int = [50, 200] }
learning_starts = 100
[run]
eval_every = 100
eval_episodes = 2
checkpoint_every = 100
log_every = 100
num_envs = 1
"""

SWEEP = ["sweep", "--space", "SPACE", "--trials", "2", "--seeds", "1", "--total-steps", "300", "--search-seed", "3"]


def _space_file(tmp_path, text=SPACE, name="space.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _argv(space: str, logdir, *extra: str) -> list[str]:
    return [a if a != "SPACE" else space for a in SWEEP] + ["--logdir", str(logdir), *extra]


def _only_dir(parent) -> str:
    (d,) = os.listdir(parent)
    return os.path.join(parent, d)


def _csv(path: str) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _spec(**changes) -> SweepSpec:
    """The spec of a sweep as the CLI would make it (for building trial configs without a sweep)."""
    spec = SweepSpec(algo="dqn", env="CartPole-v1", seeds=(0,), trials=1, total_steps=1000, sets=(),
                     search="random", search_seed=0, early_stop="none", objective="auc", threshold=475.0,
                     backend="local", address=None, max_concurrent=None, space_file="space.toml")
    return dataclasses.replace(spec, **changes)


def _run_dir(sweep_dir: str, k: int, seed: int = 0) -> RunDir:
    return Trial(sweep_dir, k).run_dir(SweepSpec.read(sweep_dir), seed)


# --------------------------------------------------------------------------------------------------
# The search-space parser


def test_every_distribution_parses_and_samples_in_range_with_the_right_type():
    doc = {"algo": "dqn",
           "agent": {"lr": {"loguniform": [1e-4, 1e-2]}, "gamma": {"uniform": [0.9, 0.99]},
                     "batch_size": {"choice": [32, 64, 128]}, "hidden_sizes": {"choice": [[64, 64], [128]]},
                     "target_update_interval": {"int": [50, 60]}, "buffer_size": {"logint": [1000, 100000]},
                     "double_dqn": {"choice": [True, False]}, "loss": {"choice": ["huber", "l2"]},
                     "tau": 0.5},
           "run": {"num_envs": {"choice": [1, 2]}, "eval_every": 700}}
    space = parse_space(doc, "dqn", "s.toml")
    kinds = {p.key: p.kind for p in space.params}
    assert kinds == {"agent.lr": "loguniform", "agent.gamma": "uniform", "agent.batch_size": "choice",
                     "agent.hidden_sizes": "choice", "agent.target_update_interval": "int",
                     "agent.buffer_size": "logint", "agent.double_dqn": "choice", "agent.loss": "choice",
                     "run.num_envs": "choice"}
    assert space.fixed == {"agent.tau": 0.5, "run.eval_every": 700}
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(400)]
    lrs = np.array([d["agent.lr"] for d in draws])
    assert all(type(d["agent.lr"]) is float and type(d["agent.gamma"]) is float for d in draws)
    assert 1e-4 <= lrs.min() and lrs.max() <= 1e-2
    # log-uniform: about half the draws below the geometric midpoint 1e-3, not ~9% as uniform would give
    assert 0.4 < np.mean(lrs < 1e-3) < 0.6
    gammas = np.array([d["agent.gamma"] for d in draws])
    assert 0.9 <= gammas.min() and gammas.max() <= 0.99 and 0.4 < np.mean(gammas < 0.945) < 0.6
    ints = [d["agent.target_update_interval"] for d in draws]
    assert all(type(x) is int for x in ints) and set(ints) == set(range(50, 61))  # both ends inclusive
    bufs = np.array([d["agent.buffer_size"] for d in draws])
    assert all(type(d["agent.buffer_size"]) is int for d in draws) and 1000 <= bufs.min() and bufs.max() <= 100000
    assert 0.4 < np.mean(bufs < 10000) < 0.6
    assert {d["agent.batch_size"] for d in draws} == {32, 64, 128}
    assert {json.dumps(d["agent.hidden_sizes"]) for d in draws} == {"[64, 64]", "[128]"}
    assert {d["agent.double_dqn"] for d in draws} == {True, False}
    assert {d["run.num_envs"] for d in draws} == {1, 2}
    # the same search seed gives the same trials
    assert parse_space(doc, "dqn").sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))
    # every sampled config builds
    for d in draws[:20]:
        cfg = trial_config(_spec(), space, d, seed=4)
        run_cfg, agent_cfg = cfg.run, cfg.agent
        assert agent_cfg.lr == d["agent.lr"] and agent_cfg.hidden_sizes == d["agent.hidden_sizes"]
        assert agent_cfg.loss == d["agent.loss"] and run_cfg.num_envs == d["run.num_envs"]
        assert agent_cfg.tau == 0.5 and run_cfg.eval_every == 700 and run_cfg.seed == 4 and run_cfg.total_steps == 1000


@pytest.mark.parametrize("agent, fragment", [
    ({"lrr": {"uniform": [0.1, 0.2]}}, "unknown key agent.lrr: allowed keys are"),
    ({"lr": {"normal": [0.1, 0.2]}}, "unknown distribution 'normal'"),
    ({"lr": {"uniform": [0.1, 0.2], "choice": [1]}}, "a distribution is one key"),
    ({"lr": {"uniform": [0.2, 0.1]}}, "low must be less than high"),
    ({"lr": {"uniform": [0.2, 0.2]}}, "low must be less than high"),
    ({"lr": {"uniform": [0.1]}}, "needs [low, high]"),
    ({"lr": {"uniform": ["a", "b"]}}, "needs [low, high]"),
    ({"lr": {"loguniform": [0.0, 0.1]}}, "low must be > 0"),
    ({"buffer_size": {"logint": [0, 100]}}, "low must be > 0"),
    ({"lr": {"choice": []}}, "non-empty list"),
    ({"lr": {"choice": 0.1}}, "non-empty list"),
    ({"lr": {"choice": [0.1, "fast"]}}, "agent.lr: 'fast' is not a float"),
    ({"batch_size": {"choice": [32, 32]}}, "a value twice"),
    ({"batch_size": {"uniform": [16.0, 64.0]}}, "takes int: use int, logint or choice"),
    ({"batch_size": {"int": [16.5, 64]}}, "bounds must be integers"),
    ({"loss": {"int": [1, 3]}}, "is not a string"),
    ({"hidden_sizes": {"choice": [64, 128]}}, "is not a list"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_bad_space_is_a_one_line_error_naming_the_key(agent, fragment):
    with pytest.raises(ConfigError) as e:
        parse_space({"agent": agent}, "dqn", "s.toml")
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg and msg.startswith("s.toml: ")


@pytest.mark.parametrize("doc, fragment", [
    ({"run": {"seed": {"int": [0, 9]}}}, "run.seed cannot be in a search space: --seeds sets it"),
    ({"run": {"env_id": {"choice": ["CartPole-v1"]}}}, "run.env_id cannot be"),
    ({"model": {"lr": {"uniform": [0.1, 0.2]}}}, "unknown top-level key 'model'"),
    ({"algo": "pg", "agent": {"lr": {"uniform": [0.1, 0.2]}}}, "algo = 'pg' but the sweep's algorithm is 'dqn'"),
    ({"agent": {"lr": 0.1}}, "no distribution to search"),
    ({"agent": []}, "agent must be a table"),
])
def test_bad_space_structure(doc, fragment):
    with pytest.raises(ConfigError, match=None) as e:
        parse_space(doc, "dqn", "s.toml")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_cli_rejects_bad_spaces_before_anything_starts(tmp_path, capsys):
    logdir = tmp_path / "runs"
    cases = [
        (SPACE.replace("lr = {", "lrr = {"), [], "unknown key agent.lrr"),
        (SPACE.replace("[1e-4, 3e-3]", "[3e-3, 1e-4]"), [], "low must be less than high"),
        # each range end is built as a config and validated: gamma 1.5 is out of DQNConfig's [0, 1]
        (SPACE.replace("[0.9, 0.99]", "[0.9, 1.5]"), [], "agent.gamma = 1.5 is not a valid config"),
        ("algo = \"dqn\"\n[agent]\nlr = { loguniform = [1e-4, 1e-3] }\n", ["--set", "agent.lr=1e-3"],
         "agent.lr is searched by the space file"),
        (SPACE, ["--backend", "local", "--early-stop", "asha"], "--early-stop asha needs --backend ray"),
        (SPACE, ["--search", "optuna"], "--search optuna needs --backend ray"),
        (SPACE, ["--seeds", "x"], "--seeds 'x'"),
        (SPACE, ["--trials", "0"], "--trials 0: must be at least 1"),
        (SPACE, ["--env", "CartPol-v1"], "CartPol-v1"),
        ("algo = \"dqn\"\n[agent\n", [], "not valid TOML"),
    ]
    for text, extra, fragment in cases:
        space = _space_file(tmp_path, text)
        code = main(_argv(space, logdir, *extra))
        err = capsys.readouterr().err.strip()
        assert code == 2, (fragment, err)
        assert err.startswith("rlnn: error: ") and "\n" not in err and fragment in err, err
        assert not logdir.exists() or not os.listdir(logdir), fragment  # nothing started
    assert main(["sweep", "--resume", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def test_the_config_file_of_a_worker_is_the_trial_config(tmp_path):
    # A local worker reads the fixed and sampled values from a TOML file (tomli_w) plus the sweep's --set
    # items; the Ray backend builds the config in-process. Every kind of value must give the same config.
    doc = {"agent": {"lr": {"choice": [1e-5, 0.00223, 1.0]}, "hidden_sizes": {"choice": [[64, 64], [3]]},
                     "double_dqn": {"choice": [True, False]}, "loss": "l2", "target_update_interval": 3,
                     "gamma": {"uniform": [0.9, 0.99]}},
           "run": {"env_kwargs": {"max_episode_steps": 50}, "normalize_obs": True}}
    space = parse_space(doc, "dqn", "s.toml")
    spec = _spec(sets=("batch_size=16", "dqn.learning_starts=7", "pg.lr=0.5", "run.eval_every=300"))
    rng = np.random.default_rng(0)
    for _ in range(8):
        params = space.sample(rng)
        path = tmp_path / "config.toml"
        path.write_text(tomli_w.dumps(trial_document(spec, space, params)))
        worker = build("dqn", spec.env, str(path), list(spec.sets), {"seed": 4})
        assert worker.to_dict() == trial_config(spec, space, params, seed=4).to_dict()
        assert worker.run.env_kwargs == {"max_episode_steps": 50} and worker.agent.batch_size == 16
        assert worker.agent.lr == params["agent.lr"] and worker.run.total_steps == 1000


def test_spec_round_trips_through_json():
    spec = _spec(sets=("run.eval_every=100",), seeds=(1, 4), time=17)
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# --------------------------------------------------------------------------------------------------
# A tiny sweep end to end, local backend


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep_local")
    space = _space_file(tmp)
    code = main(_argv(space, tmp / "runs", "--max-concurrent", "2"))
    assert code == 0
    return _only_dir(tmp / "runs"), space


def test_local_sweep_layout_and_runs(local_sweep):
    sweep_dir, _ = local_sweep
    assert os.path.basename(sweep_dir).startswith("sweep__CartPole-v1__dqn__")
    spec = SweepSpec.read(sweep_dir)
    space, _ = load_space(os.path.join(sweep_dir, "space.toml"), "dqn")
    for k in (0, 1):
        tdir = os.path.join(sweep_dir, f"trial_{k:03d}")
        params = json.load(open(os.path.join(tdir, "params.json")))["params"]
        assert set(params) == {"agent.lr", "agent.batch_size", "agent.hidden_sizes", "agent.gamma",
                               "agent.target_update_interval"}
        run_dir = Trial(sweep_dir, k).run_dir(spec, 0)
        assert run_dir.status == "done"
        cfg = run_dir.read_config()
        for key, value in params.items():  # the sampled values reached the run
            assert cfg["agent"][key.split(".", 1)[1]] == value
        assert cfg["agent"]["learning_starts"] == 100 and cfg["run"]["eval_every"] == 100  # the fixed values
        assert cfg["run"]["total_steps"] == 300 and cfg["run"]["seed"] == 0
        assert cfg == trial_config(spec, space, params, seed=0).to_dict()  # what the Ray backend would train


def test_local_sweep_ranking_equals_the_event_files(local_sweep):
    sweep_dir, _ = local_sweep
    rows = _csv(os.path.join(sweep_dir, "sweep.csv"))
    assert [r["rank"] for r in rows] == ["1", "2"] and {r["trial"] for r in rows} == {"0", "1"}
    objectives = [float(r["objective_mean"]) for r in rows]
    assert objectives == sorted(objectives, reverse=True)
    for row in rows:
        tdir = os.path.join(sweep_dir, f"trial_{int(row['trial']):03d}")
        evals = read_scalars(_run_dir(sweep_dir, int(row["trial"])).path)["eval/episodic_return"]
        steps = np.array([s for s, _ in evals], dtype=float)
        values = np.array([v for _, v in evals])
        assert float(row["objective_mean"]) == pytest.approx(area_under_curve(steps, values))
        assert row["objective_ci_low"] == row["objective_ci_high"] == ""    # 1 seed: no interval
        assert float(row["final_eval_mean"]) == pytest.approx(values[-1])
        assert row["seeds"] == "1" and row["status"] == "done"
        params = json.load(open(os.path.join(tdir, "params.json")))["params"]
        assert float(row["agent.lr"]) == params["agent.lr"] and row["agent.hidden_sizes"] == json.dumps(
            params["agent.hidden_sizes"])
    md = open(os.path.join(sweep_dir, "sweep.md")).read()
    assert "| rank | trial | status | agent.lr |" in md and "objective [95% CI]" in md
    assert "Only 1 seed per trial: too few for confident 95% intervals" in md


def test_best_config_is_a_ready_preset(local_sweep):
    sweep_dir, _ = local_sweep
    best = _csv(os.path.join(sweep_dir, "sweep.csv"))[0]
    cfg = _run_dir(sweep_dir, int(best["trial"])).read_config()
    preset = build("dqn", None, os.path.join(sweep_dir, "best_dqn.toml")).to_dict()
    assert preset["agent"] == cfg["agent"]
    assert {k: v for k, v in preset["run"].items() if k not in ("seed", "logdir")} == {
        k: v for k, v in cfg["run"].items() if k not in ("seed", "logdir")}


def _pixels_near(cell: np.ndarray, color: str, alpha: float = 1.0, tol: int = 12) -> int:
    """How many pixels of ``cell`` have ``color`` drawn with ``alpha`` over the white background."""
    from matplotlib.colors import to_rgb

    target = alpha * np.array(to_rgb(color)) * 255 + (1 - alpha) * 255
    return int((np.abs(cell.astype(int) - target).max(axis=-1) <= tol).sum())


def test_sweep_png_shows_every_trial_in_every_panel(local_sweep):
    from PIL import Image

    from experiments.sweep.report import BEST_COLOR, POINT_ALPHA, STATUS_COLORS

    path = os.path.join(local_sweep[0], "sweep.png")
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 800 and img.size[1] > 500  # 5 params: 2 rows of 3 panels
        pixels = np.asarray(img.convert("RGB"))
    h, w = pixels.shape[:2]
    cells = [pixels[r * h // 2:(r + 1) * h // 2, c * w // 3:(c + 1) * w // 3] for r in range(2) for c in range(3)]
    # A panel per searched key. Panels 1-4 have no legend: the colour of the finished trials' points and the
    # best trial's star there are the data (the star covers the best trial's own point). The sixth cell is empty.
    done = STATUS_COLORS["done"]
    for cell in cells[:5]:
        assert _pixels_near(cell, done, POINT_ALPHA) > 10 and _pixels_near(cell, BEST_COLOR) > 25
    assert _pixels_near(cells[5], done, POINT_ALPHA) == 0 == _pixels_near(cells[5], BEST_COLOR)


def test_each_trial_is_an_hparams_session_with_its_metrics(local_sweep):
    from tensorboard.plugins.hparams import metadata

    sweep_dir, _ = local_sweep
    # The experiment summary at the root: the searched keys and the sweep metrics are the HPARAMS columns.
    root = accumulator(sweep_dir)
    (content,) = [root.SummaryMetadata(t).plugin_data.content for t in root.Tags()["tensors"]
                  if t == metadata.EXPERIMENT_TAG]
    experiment = metadata.parse_experiment_plugin_data(content)
    assert {h.name for h in experiment.hparam_infos} == {"agent.lr", "agent.batch_size", "agent.hidden_sizes",
                                                         "agent.gamma", "agent.target_update_interval"}
    assert {m.name.tag for m in experiment.metric_infos} >= {"sweep/objective", "sweep/final_eval",
                                                             "sweep/steps_to_solve", "sweep/seconds_to_solve"}
    for k in (0, 1):
        tdir = os.path.join(sweep_dir, f"trial_{k:03d}")
        acc = accumulator(tdir)
        (tag,) = [t for t in acc.Tags()["tensors"] if t == metadata.SESSION_START_INFO_TAG]
        start = metadata.parse_session_start_info_plugin_data(acc.SummaryMetadata(tag).plugin_data.content)
        params = json.load(open(os.path.join(tdir, "params.json")))["params"]
        logged = {name: (v.string_value or v.number_value) for name, v in start.hparams.items()}
        assert logged == {k2: json.dumps(v) if isinstance(v, list) else v for k2, v in params.items()}
        scalars = read_scalars(tdir)
        record = json.load(open(os.path.join(tdir, "trial.json")))
        assert scalars["sweep/objective"][0][1] == pytest.approx(record["objective"], rel=1e-6)
        assert scalars["sweep/final_eval"][0][1] == pytest.approx(record["final_eval"], rel=1e-6)


def test_ctrl_c_in_the_report_phase_prints_the_resume_line(local_sweep, monkeypatch, capsys):
    import experiments.sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.sweep, "report_sweep", interrupted)
    sweep_dir, _ = local_sweep
    assert main(["sweep", "--resume", sweep_dir]) == 130
    out = capsys.readouterr().out
    assert "0 trial(s), 0 run(s) to do" in out and f"rlnn sweep --resume {sweep_dir}" in out


def test_diverged_trial_is_failed_and_ranked_last_a_crashed_run_is_retried(tmp_path, monkeypatch, capsys):
    original = executor.Job.command

    def fake(job):  # trial_001 "diverges" (rlnn train's exit 1 + error line); trial_002 crashes once
        if "trial_001" in job.run_dir:
            return [sys.executable, "-c", "import sys; print('rlnn: error: step 7: losses/td_loss is nan'); sys.exit(1)"]
        if "trial_002" in job.run_dir and not os.path.exists(str(tmp_path / "crashed")):
            open(str(tmp_path / "crashed"), "w").close()
            return [sys.executable, "-c", "raise SystemExit(3)"]
        return original(job)

    monkeypatch.setattr(executor.Job, "command", fake)
    space = _space_file(tmp_path)
    code = main(_argv(space, tmp_path / "runs", "--trials", "3", "--max-concurrent", "2"))
    out = capsys.readouterr().out
    assert code == 1 and "FAILED  trial_001: seed 0 diverged" in out and "(exit 3;" in out
    sweep_dir = _only_dir(tmp_path / "runs")
    failed = json.load(open(os.path.join(sweep_dir, "trial_001", "trial.json")))
    assert failed["status"] == "failed" and failed["objective"] is None and failed["seeds"][0]["status"] == "diverged"
    assert not os.path.exists(os.path.join(sweep_dir, "trial_002", "trial.json"))
    code = main(["sweep", "--resume", sweep_dir])
    out = capsys.readouterr().out
    assert code == 0 and "1 trial(s), 1 run(s) to do" in out  # the crashed run only: a diverged one stays failed
    rows = _csv(os.path.join(sweep_dir, "sweep.csv"))
    assert [r["status"] for r in rows] == ["done", "done", "failed"] and rows[-1]["trial"] == "1"
    assert rows[-1]["objective_mean"] == ""


# --------------------------------------------------------------------------------------------------
# The same sweep on Ray


def test_ray_backend_runs_the_same_trials_with_the_same_results(local_sweep, tmp_path):
    import ray

    local_dir, space = local_sweep
    assert not ray.is_initialized()
    code = main(_argv(space, tmp_path / "runs", "--backend", "ray", "--max-concurrent", "2"))
    assert code == 0
    assert not ray.is_initialized()  # we started it, we shut it down
    ray_dir = _only_dir(tmp_path / "runs")
    local_rows = {r["trial"]: r for r in _csv(os.path.join(local_dir, "sweep.csv"))}
    ray_rows = {r["trial"]: r for r in _csv(os.path.join(ray_dir, "sweep.csv"))}
    assert set(ray_rows) == set(local_rows) == {"0", "1"}
    for k, row in ray_rows.items():
        for col in ("agent.lr", "agent.batch_size", "agent.hidden_sizes", "agent.gamma", "status", "rank"):
            assert row[col] == local_rows[k][col]
        # the same `rlnn train` processes, started by Ray actors instead of local threads: the same numbers
        assert row["objective_mean"] == local_rows[k]["objective_mean"]
        assert read_scalars(_run_dir(ray_dir, int(k)).path)["eval/episodic_return"] == \
            read_scalars(_run_dir(local_dir, int(k)).path)["eval/episodic_return"]
    assert os.path.exists(os.path.join(ray_dir, "best_dqn.toml")) and os.path.exists(os.path.join(ray_dir, "sweep.png"))
    assert not os.path.exists(os.path.join(ray_dir, "ray"))     # no Ray Tune for a plain random search


def _walk(top: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(top) for f in files]


def test_ray_optuna_search_with_asha_early_stopping(tmp_path):
    space = _space_file(tmp_path, SPACE.replace("eval_every = 100", "eval_every = 50"))
    argv = ["sweep", "--space", space, "--trials", "5", "--seeds", "1", "--total-steps", "400", "--logdir",
            str(tmp_path / "runs"), "--backend", "ray", "--max-concurrent", "1", "--search", "optuna",
            "--early-stop", "asha"]
    assert main(argv) == 0
    sweep_dir = _only_dir(tmp_path / "runs")
    records = [json.load(open(os.path.join(sweep_dir, f"trial_{k:03d}", "trial.json"))) for k in range(5)]
    statuses = [r["status"] for r in records]
    assert set(statuses) <= {"done", "early_stopped"} and "done" in statuses
    assert "early_stopped" in statuses  # deterministic: one trial at a time, seeded Optuna and runs
    for r in records:
        if r["status"] == "early_stopped":
            assert r["stopped_at_env_steps"] < 400 and math.isfinite(r["objective"])
        else:
            assert r["num_seeds"] == 1 and r["seeds"][0]["status"] == "done"
    rows = _csv(os.path.join(sweep_dir, "sweep.csv"))
    assert [r["status"] for r in rows] == sorted(statuses, key=lambda s: s != "done")  # finished trials first
    best = rows[0]
    assert best["status"] == "done" and os.path.exists(os.path.join(sweep_dir, "best_dqn.toml"))
    # Tune's own results live under the sweep directory: one report per evaluation, the last one final
    results = [p for p in _walk(os.path.join(sweep_dir, "ray")) if p.endswith("result.json")]
    assert len(results) == 5
    for path in results:
        reports = [json.loads(line) for line in open(path)]
        assert [r["env_steps"] for r in reports] == sorted(r["env_steps"] for r in reports)
        assert reports[-1].get("sweep_final") == 1 or reports[-1]["env_steps"] < 400   # finished or stopped early
    # no TensorBoardX files from Tune: the HPARAMS tab holds our sessions only
    assert not [p for p in _walk(os.path.join(sweep_dir, "ray")) if "tfevents" in p]


# --------------------------------------------------------------------------------------------------
# Ctrl-C and --resume


def test_interrupted_sweep_keeps_finished_trials_and_resume_runs_what_is_missing(tmp_path):
    # trial_000 finishes; trial_001 is interrupted once it has a checkpoint: from its first checkpoint (step
    # 300) to its end are 2,100 steps (about a second here), far more than the 50 ms the poll may lag.
    space = _space_file(tmp_path, SPACE.replace("checkpoint_every = 100", "checkpoint_every = 300")
                        .replace("eval_every = 100", "eval_every = 600"))
    logdir = tmp_path / "runs"
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--space", space, "--trials", "2", "--seeds", "1",
           "--total-steps", "2400", "--max-concurrent", "1", "--logdir", str(logdir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_for(lambda: logdir.exists() and os.listdir(logdir)
                 and os.path.exists(os.path.join(logdir, os.listdir(logdir)[0], "sweep.json")), "sweep.json",
                 timeout=60, proc=proc)
        sweep_dir = _only_dir(logdir)
        first, run1 = Trial(sweep_dir, 0), _run_dir(sweep_dir, 1)
        wait_for(lambda: first.record() is not None and run1.has_checkpoint(),
                 "trial 0 finished and trial 1's first checkpoint", timeout=60, proc=proc)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the sweep and its `rlnn train` workers
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "rlnn sweep --resume" in out
    before = open(first.file("trial.json")).read()
    assert Trial(sweep_dir, 1).record() is None
    # the interrupted run checkpointed on its way out: its last checkpoint is where it stopped
    assert run1.status == "interrupted"
    assert run1.latest_checkpoint() == run1.checkpoint_path(run1.read_result()["step"])

    result = subprocess.run([sys.executable, "-m", "experiments.cli", "sweep", "--resume", sweep_dir], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 trial(s), 1 run(s) to do" in result.stdout
    assert open(first.file("trial.json")).read() == before  # the finished trial was not touched
    assert run1.status == "done"
    assert len(_csv(os.path.join(sweep_dir, "sweep.csv"))) == 2
    # the resumed run has its evaluations once each, up to its full budget
    evals = read_scalars(run1.path)["eval/episodic_return"]
    assert [s for s, _ in evals] == [600, 1200, 1800, 2400]
    # nothing left: a second resume only remakes the report
    again = subprocess.run([sys.executable, "-m", "experiments.cli", "sweep", "--resume", sweep_dir], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 trial(s), 0 run(s) to do" in again.stdout
