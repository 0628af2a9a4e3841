"""PPO: the clipped surrogate's value and gradient (softmax and Gaussian policies), what the clip switches
off, epochs of minibatch steps, its config and preset, and short learning runs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import train_preset_briefly

import rlnn
from agents import config as cfgmod
from agents.base import EnvInfo
from agents.ppo import PPOAgent, PPOConfig

BOX = EnvInfo(4, 0, 2, action_dim=2, action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
SPACES = {"discrete": EnvInfo(4, 3, 2), "box": BOX}


def make_agent(env, seed=0, **kw):
    return PPOAgent(PPOConfig(**kw), env, np.random.default_rng(seed))


def surrogate_case(space, rows=40, seed=0):
    """A float64 agent with outputs of order 1, a batch, and old log-probabilities 0.5 away on two rows in
    three (ratios e^-0.5 and e^0.5, past a 0.2 clip)."""
    agent = make_agent(SPACES[space], dtype="float64", hidden_sizes=[8, 8], ent_coef=0.05)
    agent.policy.params[-2][...] *= 30
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(rows, 4))
    actions = rng.integers(0, 3, size=rows) if space == "discrete" else rng.normal(size=(rows, 2))
    logp = agent.log_probs(obs, actions)
    return agent, obs, actions, logp, logp + rng.choice([-0.5, 0.0, 0.5], size=rows), rng.normal(size=rows)


@pytest.mark.parametrize("space", SPACES)
def test_clipped_surrogate_value_and_gradient(space):
    agent, obs, actions, logp, old, adv = surrogate_case(space)

    def loss():
        return agent.policy_loss(obs, actions, adv, old, backward=False)["losses/policy_loss"]

    metrics = agent.policy_loss(obs, actions, adv, old)
    assert rlnn.gradcheck(loss, agent.policy.flat_params, agent.policy.flat_grads) < 1e-6
    if space == "box":
        assert rlnn.gradcheck(loss, agent.head.flat_params, agent.head.flat_grads) < 1e-6
    # -mean min(r A, clip(r) A) - ent_coef * H, and the rows past the clip are counted.
    ratio = np.exp(logp - old)
    entropy = agent.head.entropy(agent.policy.predict(obs))[0]
    expected = -np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv).mean() - 0.05 * entropy
    assert metrics["losses/policy_loss"] == pytest.approx(expected, rel=1e-12)
    assert metrics["losses/clipfrac"] == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))
    assert 0.3 < metrics["losses/clipfrac"] < 0.9
    assert metrics["losses/approx_kl"] == pytest.approx(np.mean(ratio - 1 - np.log(ratio)), rel=1e-12)


def policy_grads(agent, obs, actions, adv, old):
    agent.policy_loss(obs, actions, adv, old)
    return agent.policy.flat_grads.copy(), agent.head.flat_grads.copy()


@pytest.mark.parametrize("space", SPACES)
def test_the_surrogate_is_reinforce_at_ratio_one_and_stops_past_the_clip(space):
    agent, obs, actions, logp, _, adv = surrogate_case(space)
    agent.config.ent_coef = 0.0
    out = agent.policy.forward(obs)
    _, (dout, dparams) = agent.head.nll(out, actions, adv)      # REINFORCE: -mean A log pi
    agent.policy.backward(dout, input_grad=False, accumulate=False)
    reinforce = agent.policy.flat_grads.copy()
    grads, head_grads = policy_grads(agent, obs, actions, adv, logp)
    assert np.allclose(grads, reinforce, atol=1e-12) and np.allclose(head_grads, dparams, atol=1e-12)
    # The ratio moved past 1 + eps where A > 0 (or below 1 - eps where A < 0): no more pull on that row;
    # moved the other way, the row still pulls back.
    past = np.where(adv > 0, logp - 0.5, logp + 0.5)
    grads, head_grads = policy_grads(agent, obs, actions, adv, past)
    assert np.all(grads == 0) and np.all(head_grads == 0)
    behind = np.where(adv > 0, logp + 0.5, logp - 0.5)
    assert np.abs(policy_grads(agent, obs, actions, adv, behind)[0]).sum() > 0


@pytest.mark.parametrize("space", SPACES)
def test_an_update_takes_epochs_of_minibatch_steps_and_checks_its_gradients(space):
    agent = make_agent(SPACES[space], update_epochs=3, num_minibatches=4, rollout_steps=8, hidden_sizes=[8],
                       value_hidden_sizes=[8], dtype="float64", lr=0.1, lr_schedule="constant")
    rng = np.random.default_rng(1)
    for _ in range(8):
        obs = rng.normal(size=(2, 4))
        agent.observe(obs, agent.act(obs), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool))
    metrics = agent.learn(step=16)
    assert agent.policy_opt.step_count == agent.value_opt.step_count == 3 * 4
    assert agent.head_opt is None if space == "discrete" else agent.head_opt.step_count == 3 * 4
    assert {"losses/clipfrac", "losses/approx_kl", "losses/explained_variance", "losses/value_loss",
            "losses/entropy", "charts/learning_rate"} <= metrics.keys()
    assert metrics["losses/clipfrac"] > 0            # later minibatches see a policy moved by earlier ones (lr 0.1)
    actions = rng.integers(0, 3, 10) if space == "discrete" else rng.normal(size=(10, 2))
    batch = {"obs": rng.normal(size=(10, 4)), "actions": actions, "rewards": np.ones(10),
             "terminated": np.eye(10, dtype=bool)[4], "truncated": np.zeros(10, bool)}
    checks = agent.gradient_checks(batch)
    assert set(checks) == {"clipped_surrogate", "value_loss"}
    for nets, closure in checks.values():
        for net in nets if isinstance(nets, list) else [nets]:
            closure()
            assert rlnn.gradcheck(closure, net.flat_params, net.flat_grads.copy()) < 1e-6


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="agent.clip_coef"):
        PPOConfig(clip_coef=0.0).validate()
    with pytest.raises(ValueError, match="agent.update_epochs"):
        PPOConfig(update_epochs=0).validate()
    with pytest.raises(cfgmod.ConfigError, match="agent.baseline"):
        cfgmod.update(PPOConfig(), {"baseline": "none"}, "agent")      # PPO always has its critic
    for env_id, preset in (("CartPole-v1", "cartpole_ppo"), ("Pendulum-v1", "pendulum_ppo")):
        cfg = cfgmod.build("ppo", env_id)
        assert cfg.preset == preset and isinstance(cfg.agent, PPOConfig)


def test_learns_cartpole_quickly(tmp_path):
    # The CartPole preset's agent on a short budget: well above the random agent's ~22 by 8,000 steps.
    result = train_preset_briefly("ppo", "CartPole-v1", 8_000, str(tmp_path))
    last = [r for _, r in result.episode_returns[-20:]]
    assert result.evals[-1].mean > 100 or np.mean(last) > 100, (result.evals, last)


def test_learns_pendulum_with_a_gaussian_policy(tmp_path):
    # The Pendulum preset's agent for 8 rollouts: the swing-up starts (random torques: about -1,200 an episode).
    result = train_preset_briefly("ppo", "Pendulum-v1", 32_768, str(tmp_path), eval_episodes=10)
    returns = [r for _, r in result.episode_returns]
    assert np.mean(returns[-20:]) > np.mean(returns[:20]) + 150 and result.evals[-1].mean > -1_000, returns


def test_a_suite_takes_pendulum_with_its_threshold_and_refuses_dqn_there(tmp_path, capsys, monkeypatch):
    from experiments import benchmark
    from experiments.cli import main

    monkeypatch.setattr(benchmark, "BOOTSTRAP_REPS", 200)
    argv = ["compare", "--envs", "Pendulum-v1", "--seeds", "1", "--total-steps", "256", "--workers", "1",
            "--set", "run.eval_every=256", "--set", "run.eval_episodes=2", "--set", "ppo.rollout_steps=16",
            "--set", "pg.rollout_steps=16"]
    assert main([*argv, "--algos", "dqn,ppo", "--logdir", str(tmp_path / "refused")]) == 2
    assert "dqn needs a Discrete action space" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert main([*argv, "--algos", "ppo,pg", "--logdir", str(tmp_path)]) == 0
    (suite,) = os.listdir(tmp_path)
    md = (tmp_path / suite / "benchmark.md").read_text()
    assert "| Pendulum-v1 | ppo | -200 |" in md and "| Pendulum-v1 | pg | -200 |" in md
