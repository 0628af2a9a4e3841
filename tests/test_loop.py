"""The run loop: episode accounting, event files, determinism, resume, flags reaching the agent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import accumulator, read_scalars

import agents.loop as loop
from agents.rundir import RunDir
from rlnn.checkpoint import flatten
from agents.dqn import DQNConfig
from agents.pg import PGConfig
from agents.ppo import PPOConfig
from agents.random import RandomAgent, RandomConfig
from agents.logger import EVENT_FILE_PREFIX
from agents.loop import TrainingDiverged, train

CARTPOLE_X, CARTPOLE_THETA = 2.4, 12 * 2 * np.pi / 360


def test_episodic_return_one_point_per_episode_at_its_step(small_run):
    result = train("random", small_run(num_envs=1), console=False)
    scalars = read_scalars(result.run_dir)
    returns = scalars["charts/episodic_return"]
    lengths = scalars["charts/episodic_length"]
    assert len(returns) == len(lengths) == result.episodes > 20
    # One env: episode k ends exactly at the sum of the first k lengths; CartPole pays 1 per step.
    ends = np.cumsum([v for _, v in lengths])
    assert [s for s, _ in returns] == list(ends)
    assert [v for _, v in returns] == [v for _, v in lengths]
    assert result.step == 2_000


def test_all_documented_tags_and_hparams_are_written(small_run):
    result = train("random", small_run(num_envs=4), console=False)
    acc = accumulator(result.run_dir)
    tags = set(acc.Tags()["scalars"])
    assert {"charts/episodic_return", "charts/episodic_length", "charts/SPS",
            "eval/episodic_return", "eval/episodic_return_std"} <= tags
    evals = acc.Scalars("eval/episodic_return")
    steps = [e.step for e in evals]  # 4 envs: the step advances by up to 4 per iteration
    assert len(steps) == 2 and 1_000 <= steps[0] < 1_004 and 2_000 <= steps[1] < 2_004
    assert all(5 < e.value < 100 for e in evals)  # a random CartPole policy
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")
    assert "hyperparameters" in acc.PluginTagToContent("text")
    with open(os.path.join(result.run_dir, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["algo"] == "random" and cfg["run"]["num_envs"] == 4


def test_run_dir_follows_cleanrl_naming(small_run):
    result = train("random", small_run(seed=7, total_steps=300), console=False)
    name = os.path.basename(result.run_dir)
    env_id, algo, seed, stamp = name.split("__")
    assert (env_id, algo, seed) == ("CartPole-v1", "random", "7") and stamp.isdigit()
    assert os.path.exists(os.path.join(result.run_dir, "progress.csv"))
    assert RunDir(result.run_dir).checkpoints()


def test_vector_envs_count_every_episode_once(small_run):
    result = train("random", small_run(num_envs=8, total_steps=4_000), console=False)
    lengths = [v for _, v in read_scalars(result.run_dir)["charts/episodic_length"]]
    # Each real transition belongs to exactly one episode: finished ones plus at most one running per env.
    assert sum(lengths) <= result.step < sum(lengths) + 8 * 500
    assert result.step - sum(lengths) < 8 * max(lengths) + 8


class RecordingAgent(RandomAgent):
    calls: list = []

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid):
        RecordingAgent.calls.append(tuple(np.array(a, copy=True) for a in
                                          (obs, actions, rewards, next_obs, terminated, truncated, valid)))


@pytest.mark.parametrize("num_envs", [1, 4])
def test_terminated_and_truncated_reach_the_agent_apart(small_run, monkeypatch, num_envs):
    monkeypatch.setattr(loop, "get_algo", lambda name: (RandomConfig, RecordingAgent))
    RecordingAgent.calls = []
    cfg = small_run(num_envs=num_envs, total_steps=1_500, env_kwargs={"max_episode_steps": 20}, eval_episodes=0)
    train("recorder", cfg, console=False)
    calls = RecordingAgent.calls
    steps = np.zeros(num_envs, dtype=int)
    n_term = n_trunc = 0
    prev_done = np.zeros(num_envs, dtype=bool)
    for obs, act, rew, next_obs, term, trunc, valid in calls:
        assert np.array_equal(valid, ~prev_done)  # the NEXT_STEP reset row is masked
        assert (rew[~valid] == 0).all() and not (term[~valid] | trunc[~valid]).any()
        steps = np.where(valid, steps + 1, 0)
        out_of_bounds = (np.abs(next_obs[:, 0]) > CARTPOLE_X) | (np.abs(next_obs[:, 2]) > CARTPOLE_THETA)
        assert np.array_equal(term[valid], out_of_bounds[valid])  # next_obs is the true final observation
        # Gymnasium may set both at the time limit; terminated then wins (agents must not bootstrap).
        assert np.array_equal(trunc[valid], steps[valid] == 20)
        n_term += int(term.sum())
        n_trunc += int((trunc & ~term).sum())
        prev_done = term | trunc
    assert n_term > 10 and n_trunc > 3


def _params(run_dir):
    _, state = RunDir(run_dir).load_checkpoint()
    return flatten(state["agent"])


def _returns(run_dir):
    return read_scalars(run_dir)["charts/episodic_return"]


@pytest.mark.parametrize("algo", ["random", "pg", "dqn"])
def test_same_seed_same_run(small_run, algo):
    a = train(algo, small_run(seed=3, eval_episodes=0), run_dir=small_run().logdir + "/a", console=False)
    b = train(algo, small_run(seed=3, eval_episodes=0), run_dir=small_run().logdir + "/b", console=False)
    c = train(algo, small_run(seed=4, eval_episodes=0), run_dir=small_run().logdir + "/c", console=False)
    assert _returns(a.run_dir) == _returns(b.run_dir) != _returns(c.run_dir)
    pa, pb = _params(a.run_dir), _params(b.run_dir)
    assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


@pytest.mark.parametrize("algo,num_envs,agent_cfg,env_id", [
    ("random", 4, None, "CartPole-v1"), ("pg", 4, None, "CartPole-v1"), ("dqn", 1, None, "CartPole-v1"),
    ("ppo", 4, PPOConfig(rollout_steps=32), "CartPole-v1"), ("dqn", 2, DQNConfig(n_step=3), "CartPole-v1"),
    ("pg", 2, PGConfig(baseline="none", rollout_steps=100), "Pendulum-v1"),
    ("ppo", 4, PPOConfig(rollout_steps=64), "Pendulum-v1")])
def test_resume_equals_uninterrupted_bit_for_bit(small_run, algo, num_envs, agent_cfg, env_id):
    # Stop at 1,500 steps, resume until 3,000: same parameters and returns as 3,000 steps at once.
    cfg = small_run(seed=1, num_envs=num_envs, total_steps=3_000, checkpoint_every=700, eval_every=900, env_id=env_id)
    whole = train(algo, cfg, agent_cfg, run_dir=cfg.logdir + "/whole", console=False)
    half_cfg = small_run(seed=1, num_envs=num_envs, total_steps=1_500, checkpoint_every=700, eval_every=900,
                         env_id=env_id)
    half = train(algo, half_cfg, agent_cfg, run_dir=cfg.logdir + "/split", console=False)
    resumed = train(algo, cfg, agent_cfg, run_dir=half.run_dir, resume=True, console=False)
    assert resumed.step == whole.step
    pw, pr = _params(whole.run_dir), _params(resumed.run_dir)
    assert pw.keys() == pr.keys()
    for key in pw:
        assert np.array_equal(pw[key], pr[key]), key
    assert _returns(whole.run_dir) == _returns(resumed.run_dir)


def test_a_resumed_sessions_event_file_sorts_after_the_one_before(small_run):
    # TensorBoard reads event files in name order, and a name starts with its writer's start second: a
    # resume less than a second after a short first session must still sort after it, or the first
    # session's START event, read last, would purge every resumed point.
    cfg = small_run(seed=0, total_steps=200, checkpoint_every=100, eval_episodes=0)
    first = train("random", cfg, console=False)
    train("random", small_run(seed=0, total_steps=400, checkpoint_every=100, eval_episodes=0),
          run_dir=first.run_dir, resume=True, console=False)
    names = sorted(n for n in os.listdir(first.run_dir) if n.startswith(EVENT_FILE_PREFIX))
    seconds = [int(n.split(".")[3]) for n in names]
    assert len(names) == 2 and seconds[0] < seconds[1]
    steps = [s for s, _ in read_scalars(first.run_dir)["charts/episodic_return"]]
    assert steps == sorted(steps) and 200 < steps[-1] <= 400


def test_resume_continues_the_curve_and_purges_stale_points(small_run):
    cfg = small_run(seed=2, total_steps=2_000, checkpoint_every=1_000, keep_checkpoints=5)
    first = train("random", cfg, console=False)
    # Pretend the process died after the 1,000-step checkpoint: drop the later checkpoint.
    for path in RunDir(first.run_dir).checkpoints()[1:]:
        os.remove(path)
    train("random", small_run(seed=2, total_steps=3_000), run_dir=first.run_dir, resume=True, console=False)
    steps = [s for s, _ in read_scalars(first.run_dir)["charts/episodic_return"]]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no restart at 0, no duplicates
    assert steps[-1] > 2_900
    assert len([d for d in os.listdir(cfg.logdir)]) == 1  # same run directory, no new one
    evals = [s for s, _ in read_scalars(first.run_dir)["eval/episodic_return"]]
    assert evals == [1_000, 2_000, 3_000]


class NaNAgent(RandomAgent):
    def learn(self, step):
        return {"losses/td_loss": float("nan") if step > 700 else 1.0}


def test_nan_loss_stops_the_run_keeping_the_last_good_checkpoint(small_run, monkeypatch):
    monkeypatch.setattr(loop, "get_algo", lambda name: (RandomConfig, NaNAgent))
    cfg = small_run(checkpoint_every=500, log_every=100)
    with pytest.raises(TrainingDiverged, match=r"step 8\d\d: losses/td_loss is nan"):
        train("nan", cfg, run_dir=cfg.logdir + "/nan", console=False)
    paths = RunDir(cfg.logdir + "/nan").checkpoints()
    assert [os.path.basename(p) for p in paths] == ["step_0000000500.npz"]
    meta, _ = RunDir(cfg.logdir + "/nan").load_checkpoint(paths[0])
    assert meta["loop"]["step"] == 500


def test_stop_at_eval_return(small_run):
    result = train("random", small_run(total_steps=50_000, eval_every=500, stop_at_eval_return=1.0), console=False)
    assert result.status == "target_reached" and result.step < 600


def test_observation_normalization_is_saved_and_frozen_for_evaluation(small_run):
    import envs

    cfg = small_run(normalize_obs=True, total_steps=1_000, num_envs=4)
    result = train("random", cfg, console=False)
    _, state = RunDir(result.run_dir).load_checkpoint()
    saved = flatten(state["env"])
    assert saved["norm/count"] > 900 and saved["norm/var"].shape == (4,)
    assert not np.allclose(saved["norm/var"], 1.0)  # real statistics, not the initial ones

    train_env = envs.make_vec_env("CartPole-v1", 4, seed=0, normalize_obs=True)
    envs.load_env_state(train_env, saved)
    eval_env = envs.make_eval_env("CartPole-v1", 3, train_env)
    norm = envs.obs_normalizer(eval_env)
    assert np.array_equal(norm.obs_rms.mean, saved["norm/mean"]) and not norm.update_running_mean
    eval_env.reset(seed=1)
    eval_env.step(np.zeros(3, dtype=np.int64))
    assert np.array_equal(norm.obs_rms.mean, saved["norm/mean"])  # evaluating does not move them


def test_episodes_ending_in_the_same_vector_step_get_distinct_steps(small_run):
    result = train("random", small_run(num_envs=8, total_steps=3_000, eval_episodes=0), console=False)
    steps = [s for s, _ in read_scalars(result.run_dir)["charts/episodic_return"]]
    assert len(steps) == result.episodes and len(set(steps)) == len(steps) and steps == sorted(steps)
    assert steps[-1] <= result.step
