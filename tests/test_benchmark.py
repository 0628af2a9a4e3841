"""``rlnn compare --envs``: a suite over envs, its benchmark table and figure, and the aggregate over envs."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import sys

import gymnasium as gym
import numpy as np
import pytest

from agents.rundir import RunDir
from experiments import benchmark, executor
from experiments.benchmark import EnvResult, across_envs, normalized_score, score_matrix
from experiments.cli import main
from experiments.compare import CompareSpec, SuiteSpec, read_spec
from experiments.report import Curve, RunSummary
from experiments.stats import iqm, probability_of_improvement

TINY = ["--total-steps", "400", "--set", "run.eval_every=200", "--set", "run.eval_episodes=2",
        "--set", "run.num_envs=2", "--set", "run.checkpoint_every=200", "--set", "run.log_every=100",
        "--set", "dqn.learning_starts=100", "--set", "pg.rollout_steps=16"]
ENVS = ("CartPole-v1", "Acrobot-v1")


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """pg and dqn on CartPole-v1 and Acrobot-v1, one seed, whose Acrobot dqn run is killed as it starts
    (the suite exits 1 with a benchmark of what ended); ``--resume`` then finishes that run."""
    logdir = tmp_path_factory.mktemp("suite")
    original = executor.Job.command

    def kill_acrobot_dqn(job):
        if job.env == "Acrobot-v1" and job.algo == "dqn" and not job.resume:
            return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
        return original(job)

    first, resumed = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(benchmark, "BOOTSTRAP_REPS", 1000)   # the statistics are tested below; this is speed
        mp.setattr(executor.Job, "command", kill_acrobot_dqn)
        with contextlib.redirect_stdout(first):
            first_code = main(["compare", "--envs", ",".join(ENVS), "--algos", "pg,dqn", "--seeds", "1",
                               "--workers", "2", "--logdir", str(logdir), *TINY])
        (parent,) = [logdir / d for d in os.listdir(logdir)]
        first_md = (parent / "benchmark.md").read_text()
        mp.setattr(executor.Job, "command", original)
        with contextlib.redirect_stdout(resumed):
            resume_code = main(["compare", "--resume", str(parent)])
    return {"parent": parent, "first": (first_code, first.getvalue(), first_md),
            "resume": (resume_code, resumed.getvalue())}


def test_suite_makes_one_compare_directory_per_env(suite):
    parent = suite["parent"]
    assert parent.name.startswith("suite__")
    spec = read_spec(str(parent))
    assert isinstance(spec, SuiteSpec) and spec.envs == ENVS and spec.algos == ("pg", "dqn") and spec.seeds == (0,)
    assert SuiteSpec.from_dict(spec.to_dict()) == spec
    assert sorted(os.listdir(parent)) == sorted(["suite.json", "benchmark.md", "benchmark.csv", "benchmark.png",
                                                 *ENVS])
    for env in ENVS:
        env_dir = parent / env
        assert CompareSpec.read(str(env_dir)) == spec.compare(env)      # an ordinary compare directory
        runs = RunDir.find(str(env_dir))
        assert sorted(os.path.basename(rd.path).split("__")[:3] for rd in runs) == [
            [env, "dqn", "0"], [env, "pg", "0"]]
        assert all(rd.finished for rd in runs)
        for name in ("summary.md", "summary.csv", "runs.csv", "learning_curves.png"):
            assert (env_dir / name).is_file()


def test_resume_of_a_suite_finishes_the_missing_run(suite):
    code, out, md = suite["first"]
    assert code == 1 and "FAILED  Acrobot-v1__dqn__0__" in out
    assert "| Acrobot-v1 | pg |" in md and "| Acrobot-v1 | dqn |" not in md
    assert "| dqn | 0 | – (no seed has a final eval in every env) |" in md
    code, out = suite["resume"]
    assert code == 0 and "1 run(s) to do" in out and "  done    Acrobot-v1__dqn__0__" in out
    assert "| Acrobot-v1 | dqn |" in (suite["parent"] / "benchmark.md").read_text()


def test_benchmark_rows_equal_the_per_env_summaries(suite):
    parent = suite["parent"]
    rows = _rows(parent / "benchmark.csv")
    assert [(r["env"], r["algo"]) for r in rows] == [(e, a) for e in ENVS for a in ("dqn", "pg")]
    md = (parent / "benchmark.md").read_text()
    for row in rows:
        (summary,) = [s for s in _rows(parent / row["env"] / "summary.csv") if s["algo"] == row["algo"]]
        assert {k: row[k] for k in summary} == summary
        assert float(row["threshold"]) == gym.spec(row["env"]).reward_threshold
        assert int(row["budget"]) == 400
        # The markdown row is the env's summary.md row with env, threshold and budget in front.
        (line,) = [ln for ln in (parent / row["env"] / "summary.md").read_text().splitlines()
                   if ln.startswith(f"| {row['algo']} |")]
        cells = line[len(f"| {row['algo']} |"):]
        assert f"| {row['env']} | {row['algo']} | {float(row['threshold']):g} | 400 |{cells}" in md


def test_aggregate_over_envs_is_made_from_the_runs(suite):
    pytest.importorskip("rliable")
    parent = suite["parent"]
    rows = _rows(parent / "benchmark.csv")
    random = {r["env"]: float(r["random_return"]) for r in rows}
    assert 8 < random["CartPole-v1"] < 40 and random["Acrobot-v1"] < -400
    scores = {}
    for env in ENVS:
        for run in _rows(parent / env / "runs.csv"):
            scores.setdefault(run["algo"], []).append(
                normalized_score(float(run["final_eval"]), random[env], gym.spec(env).reward_threshold))
    md = (parent / "benchmark.md").read_text()
    assert "## Across envs: normalized scores" in md
    # One run per env: the points without intervals, and the note that says why
    for algo in ("pg", "dqn"):
        assert f"| {algo} | 1 | {iqm(scores[algo]):.2f} |" in md
    p = np.mean([0.5 if a == b else float(a > b) for a, b in zip(*(np.reshape(scores[x], 2) for x in ("pg", "dqn")))])
    assert f"| pg > dqn | {p:.2f} |" in md
    assert md.rstrip().endswith("Only 1 run per env: too few for confident 95% intervals (rliable recommends at "
                                "least 5-10 runs). Intervals need at least 3 and are left out (–). Run more: --seeds 10.")


def _colour_pixels(pixels: np.ndarray, i: int) -> int:
    from matplotlib.colors import to_rgb

    return int((np.abs(pixels - np.array(to_rgb(f"C{i}")) * 255).max(axis=-1) <= 12).sum())


def _png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB")).astype(int)


def test_benchmark_png_has_a_panel_per_env(suite):
    pixels = _png(suite["parent"] / "benchmark.png")
    h, w, _ = pixels.shape
    assert w > 1000 and h > 300
    cartpole, acrobot = pixels[:, : w // 2], pixels[:, w // 2:]
    # Colours as in the per-env plots: dqn C0, pg C1. On CartPole the two curves differ; on Acrobot both may
    # sit at -500 after 400 steps, where pg, drawn last, covers dqn.
    assert _colour_pixels(cartpole, 0) > 100 and _colour_pixels(cartpole, 1) > 100
    assert _colour_pixels(acrobot, 1) > 100


def _summary(algo, seed, final, values=None) -> RunSummary:
    values = np.asarray(values if values is not None else [final], dtype=np.float64)
    steps = np.linspace(0, 1000, values.size)
    return RunSummary(f"env__{algo}__{seed}", algo, seed, False, np.nan, np.nan, float(final), float(values.mean()),
                      1000.0, 1000, Curve(steps, values, steps / 100), Curve(steps, values))


def test_plot_suite_draws_every_algo_in_every_panel(tmp_path):
    algos = ["a", "b", "c"]
    results = [EnvResult(f"Env{e}-v0", 400.0, 0.0, [], [
        _summary(algo, s, 0, np.linspace(0, 100 * (i + 1) + 10 * e, 5) + s) for i, algo in enumerate(algos)
        for s in range(2)]) for e in range(4)]
    path = tmp_path / "b.png"
    benchmark.plot_suite(results, algos, str(path))
    pixels = _png(path)
    h, w, _ = pixels.shape
    for r in range(2):          # four envs: a 2 × 2 grid of panels
        for c in range(2):
            panel = pixels[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2]
            for i in range(3):
                assert _colour_pixels(panel, i) > 100, (r, c, i)


def test_normalized_score_iqm_and_probability_of_improvement_on_known_inputs():
    assert normalized_score(475.0, 20.0, 475.0) == 1.0 and normalized_score(20.0, 20.0, 475.0) == 0.0
    assert normalized_score([-300.0, -500.0, -700.0], -500.0, -100.0).tolist() == [0.5, 0.0, -0.5]
    with pytest.raises(ValueError):
        normalized_score(1.0, 5.0, 5.0)
    assert iqm([[1, 2], [3, 4], [5, 6], [7, 8]]) == 4.5             # drops 1, 2 and 7, 8
    assert iqm([100.0, 1.0, 2.0, 3.0, -100.0]) == 2.0              # int(5 / 4) = 1 off each end
    # env 1: 1 > 0 and 2 > 0 win, 2 = 2 is half, 1 < 2 loses: 2.5 / 4; env 2: X always higher: 1.
    x, y = np.array([[1.0, 5.0], [2.0, 6.0]]), np.array([[0.0, 1.0], [2.0, 2.0]])
    assert probability_of_improvement(x, y) == pytest.approx((0.625 + 1.0) / 2)
    assert probability_of_improvement(x, x) == 0.5
    # Runs with a final eval in every env only: seed 1 of "a" misses env B.
    results = [EnvResult("A", 10.0, 0.0, [], [_summary("a", 0, 5.0), _summary("a", 1, 10.0), _summary("b", 0, 0.0)]),
               EnvResult("B", 30.0, 10.0, [], [_summary("a", 0, 20.0), _summary("b", 0, 30.0)])]
    assert score_matrix(results, "a").tolist() == [[0.5, 0.5]]
    assert score_matrix(results, "b").tolist() == [[0.0, 1.0]]
    assert score_matrix(results, "c").shape == (0, 2)


def test_iqm_and_probability_of_improvement_equal_rliable():
    pytest.importorskip("rliable")
    from rliable import library as rly
    from rliable import metrics

    rng = np.random.default_rng(3)
    for shape_x, shape_y in [((5, 4), (5, 4)), ((7, 3), (4, 3)), ((10, 1), (3, 1))]:
        x = rng.integers(0, 4, size=shape_x) / 4.0                  # many ties
        y = rng.normal(0.4, 0.3, size=shape_y).round(1)
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
        assert iqm(y) == pytest.approx(metrics.aggregate_iqm(y))
        assert probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
    # The CIs are rliable's stratified bootstrap of these statistics: the same resamples give the same bounds.
    results = [EnvResult(env, 1.0, 0.0, [], [_summary(a, s, rng.normal(0.5 if a == "p" else 0.3, 0.2))
                                             for a in ("p", "q") for s in range(6)]) for env in "ABC"]
    agg = across_envs(results, ["p", "q"], reps=300)
    np.random.seed(0)
    scores = {a: score_matrix(results, a) for a in ("p", "q")}
    points, cis = rly.get_interval_estimates(scores, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=300)
    pair_points, pair_cis = rly.get_interval_estimates({"p>q": [scores["p"], scores["q"]]},
                                                       metrics.probability_of_improvement, reps=300)
    for a in ("p", "q"):
        assert agg["iqm"][a] == pytest.approx((points[a][0], cis[a][0, 0], cis[a][1, 0]))
    assert agg["poi"][("p", "q")] == pytest.approx((pair_points["p>q"], *pair_cis["p>q"].ravel()))
    again = across_envs(results, ["p", "q"], reps=300)             # reproducible: a remade report agrees
    assert (again["iqm"], again["poi"]) == (agg["iqm"], agg["poi"])
    # Two runs of q per env: its IQM and every P(X > Y) with it are points without an interval
    few = [EnvResult(r.env, r.threshold, r.random_return, [], [s for s in r.runs if s.algo == "p" or s.seed < 2])
           for r in results]
    agg = across_envs(few, ["p", "q"], reps=300)
    assert agg["iqm"]["p"] == pytest.approx((points["p"][0], cis["p"][0, 0], cis["p"][1, 0]))
    assert agg["iqm"]["q"][0] == metrics.aggregate_iqm(score_matrix(few, "q")) and np.isnan(agg["iqm"]["q"][1:]).all()
    assert np.isnan(agg["poi"][("p", "q")][1:]).all()


def test_without_rliable_the_suite_writes_everything_else(suite, tmp_path, monkeypatch):
    parent = tmp_path / "copy"
    shutil.copytree(suite["parent"], parent)
    for name in benchmark.FILES:
        os.remove(parent / name)
    monkeypatch.setitem(sys.modules, "rliable", None)              # import rliable -> ImportError
    out = io.StringIO()
    benchmark.suite_report(str(parent), read_spec(str(parent)), stream=out, write_plot=False)
    md = (parent / "benchmark.md").read_text()
    assert "| CartPole-v1 | pg |" in md and "| Acrobot-v1 | dqn |" in md and "| Acrobot-v1 | -100 | -500.0 |" in md
    (line,) = [ln for ln in md.splitlines() if "rliable" in ln and "IQM" in ln]
    assert line.endswith("pip install 'rlnn[suite]'") and "IQM" in line
    assert len(_rows(parent / "benchmark.csv")) == 4 and line in out.getvalue()


def test_bad_suites_are_one_line_errors_with_nothing_created(tmp_path, capsys):
    gym.register("NoThreshold-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    errors = []
    try:
        for argv in (["--envs", "CartPole-v1,Acrobt-v1"], ["--envs", "CartPole-v1,Pendulum-v1"],
                     ["--envs", "CartPole-v1,NoThreshold-v0"], ["--envs", " , "],
                     ["--envs", "CartPole-v1", "--env", "Acrobot-v1"], ["--envs", "CartPole-v1", "--algos", "pg,a2c"]):
            assert main(["compare", *argv, "--logdir", str(tmp_path)]) == 2, argv
            errors.append(capsys.readouterr().err.strip())
            assert errors[-1].startswith("rlnn: error:") and "\n" not in errors[-1], argv
    finally:
        del gym.registry["NoThreshold-v0"]
    assert "Acrobt-v1" in errors[0] and "Acrobot-v1" in errors[0]    # the typo, and the id it means
    assert "Discrete" in errors[1] and "NoThreshold-v0 has no registered reward threshold" in errors[2]
    assert not os.listdir(tmp_path)                                  # nothing created


def test_report_of_a_suite_directory_remakes_the_benchmark(suite, capsys, monkeypatch):
    monkeypatch.setattr(benchmark, "BOOTSTRAP_REPS", 1000)
    before = (suite["parent"] / "benchmark.csv").read_text()
    (suite["parent"] / "benchmark.csv").unlink()
    assert main(["report", str(suite["parent"])]) == 0
    assert "benchmark:" in capsys.readouterr().out
    assert (suite["parent"] / "benchmark.csv").read_text() == before


def test_resume_on_ray_trains_the_missing_runs_as_the_local_executor_did(suite, tmp_path, capsys):
    """Two runs of the local suite removed, then ``--resume --backend ray``: only those two run (on a local
    Ray instance), and everything that depends on the runs is what the local executor made."""
    import ray

    parent = tmp_path / "copy"
    shutil.copytree(suite["parent"], parent)
    removed = [RunDir.find(str(parent / "CartPole-v1"))[0], RunDir.find(str(parent / "Acrobot-v1"))[1]]
    for rd in removed:
        shutil.rmtree(rd.path)
    os.remove(parent / "benchmark.png")
    assert main(["compare", "--resume", str(parent), "--backend", "ray", "--workers", "2"]) == 0
    assert not ray.is_initialized()
    out = capsys.readouterr().out
    assert "2 run(s) to do" in out and "on Ray (local instance" in out
    assert sorted(out.count(f"  done    {os.path.basename(rd.path)}") for rd in removed) == [1, 1]
    for env in ENVS:
        same = ("run", "solved", "steps_to_solve", "final_eval", "auc", "total_steps")
        assert [{k: r[k] for k in same} for r in _rows(parent / env / "runs.csv")] == \
            [{k: r[k] for k in same} for r in _rows(suite["parent"] / env / "runs.csv")]
    assert (parent / "benchmark.png").read_bytes() == (suite["parent"] / "benchmark.png").read_bytes()
