"""Policy gradient: the REINFORCE loss gradient (softmax and Gaussian policies), advantages over vector
rollouts (reset rows, truncation, carried-over episodes), sampling, exact state round trip and short
learning runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import train_preset_briefly

import rlnn
from agents import config as cfgmod
from agents.base import EnvInfo
from agents.pg import PGAgent, PGConfig
from agents.returns import gae, reward_to_go
from rlnn.checkpoint import load_tree, save_tree

METRICS = {"losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/grad_norm", "charts/learning_rate"}


def make_agent(seed=0, env=EnvInfo(4, 2, 2), **kw):
    return PGAgent(PGConfig(**kw), env, np.random.default_rng(seed))


def _rollout():
    """The 6-step, 2-env rollout of test_returns._batch, with observations (obs_{t+1} = next_obs_t)."""
    valid = np.array([[1, 1], [1, 1], [0, 1], [1, 0], [1, 1], [1, 1]], bool)
    term = np.zeros((6, 2), bool)
    trunc = np.zeros((6, 2), bool)
    term[1, 0] = True                     # env 0: terminated at t=1, reset row t=2, running from t=3
    trunc[2, 1] = True                    # env 1: truncated at t=2, reset row t=3
    term[5, 1] = trunc[5, 1] = True       # env 1: terminated (and truncated) at t=5
    rng = np.random.default_rng(42)
    states = rng.normal(size=(7, 2, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=(6, 2))
    return states, actions, valid.astype(float), term, trunc, valid


def feed(agent, rollout):
    states, actions, rewards, term, trunc, valid = rollout
    for t in range(len(actions)):
        agent.observe(states[t], actions[t], rewards[t], states[t + 1], term[t], trunc[t], valid[t])


def test_policy_loss_gradient_matches_finite_differences():
    agent = make_agent(dtype="float64", ent_coef=0.05, hidden_sizes=[8, 8])
    agent.policy.params[-2][...] *= 100            # undo the small last-layer init: non-trivial logits
    rng = np.random.default_rng(0)
    keep = np.ones(12, bool)
    keep[[3, 7]] = False                           # two invalid rows: the learner leaves them out
    obs = rng.normal(size=(12, 4))[keep]
    actions = rng.integers(0, 2, size=12)[keep]
    adv = rng.normal(size=12)[keep]

    def loss():
        return agent.policy_loss(obs, actions, adv, backward=False)["losses/policy_loss"]

    agent.policy.zero_grad()
    value = agent.policy_loss(obs, actions, adv)["losses/policy_loss"]
    assert value == pytest.approx(loss())
    assert rlnn.gradcheck(loss, agent.policy.flat_params, agent.policy.flat_grads) < 1e-6

    # The REINFORCE loss itself, means over the rows given: -mean_i A_i log pi(a_i|s_i) - ent_coef * mean_i H_i.
    logits = agent.policy.predict(obs)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    p = np.exp(logp)
    expected = -(adv * logp[np.arange(10), actions]).mean() - 0.05 * (-(p * logp).sum(1)).mean()
    assert value == pytest.approx(expected, rel=1e-10)


BOX = EnvInfo(4, 0, 2, action_dim=2, action_low=(-1.0, 0.0), action_high=(1.0, 3.0))


def test_gaussian_policy_loss_gradient_matches_finite_differences_for_the_mlp_and_the_log_std():
    agent = make_agent(dtype="float64", ent_coef=0.05, hidden_sizes=[8, 8], env=BOX)
    agent.policy.params[-2][...] *= 30             # means of order 1
    agent.head.flat_params[...] = [0.3, -0.4]
    rng = np.random.default_rng(0)
    obs, actions, adv = rng.normal(size=(10, 4)), rng.normal(size=(10, 2)) * 2, rng.normal(size=10)

    def loss():
        return agent.policy_loss(obs, actions, adv, backward=False)["losses/policy_loss"]

    value = agent.policy_loss(obs, actions, adv)["losses/policy_loss"]
    assert rlnn.gradcheck(loss, agent.policy.flat_params, agent.policy.flat_grads) < 1e-6
    assert rlnn.gradcheck(loss, agent.head.flat_params, agent.head.flat_grads) < 1e-6
    # -mean_i A_i log N(a_i; mu_i, sigma) - ent_coef * H, H = sum_j log sigma_j + (1 + log 2 pi) / 2 per dim
    mu, std = agent.policy.predict(obs), np.exp(agent.head.flat_params)
    logp = (-0.5 * ((actions - mu) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(1)
    entropy = np.sum(np.log(std) + 0.5 * (1 + np.log(2 * np.pi)))
    assert value == pytest.approx(-(adv * logp).mean() - 0.05 * entropy, rel=1e-10)


def test_a_box_policy_gives_the_env_clipped_actions_and_learns_from_the_unclipped_sample():
    agent = make_agent(env=BOX, rollout_steps=2, log_std_init=1.0)
    obs = np.zeros((2, 4), np.float32)
    given = agent.act(obs)
    sampled = agent._sampled
    assert given.shape == (2, 2) and np.all(given >= [-1, 0]) and np.all(given <= [1, 3])
    assert not np.array_equal(given, sampled)             # std e: some of the draws fall outside the box
    agent.observe(obs, given, np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool))
    assert np.array_equal(agent.rollout.actions[0], sampled)
    other = np.full((2, 2), 0.5, np.float32)             # not what act() returned: stored as given
    agent.observe(obs, other, np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool))
    assert np.array_equal(agent.rollout.actions[1], other)
    state = agent.rng.bit_generator.state
    greedy = agent.act(np.ones((2, 4), np.float32), greedy=True)
    assert np.array_equal(greedy, np.clip(agent.policy.predict(np.ones((2, 4), np.float32)), [-1, 0], [1, 3]))
    assert agent.rng.bit_generator.state == state


def test_positive_advantage_moves_the_gaussian_mean_toward_the_action():
    agent = make_agent(lr=1e-2, max_grad_norm=0.0, baseline="none", normalize_advantages=False, rollout_steps=1,
                       env=EnvInfo(4, 0, 1, action_dim=2, action_low=(-1.0, -1.0), action_high=(1.0, 1.0)),
                       lr_schedule="constant")
    obs = np.ones((1, 4), np.float32)
    before, action = agent.policy.predict(obs)[0], np.array([[0.5, -0.5]], np.float32)
    agent.observe(obs, action, np.array([1.0]), obs, np.array([True]), np.array([False]), np.array([True]))
    assert set(agent.learn(1)) >= METRICS | {"charts/action_std"}
    after = agent.policy.predict(obs)[0]
    assert np.all(np.abs(after - action[0]) < np.abs(before - action[0]))
    assert np.all(agent.head.flat_params < 0)      # |a - mu| < sigma: the std shrinks toward the action


def test_positive_advantage_makes_the_action_more_likely():
    agent = make_agent(lr=1e-2, max_grad_norm=0.0, baseline="none", normalize_advantages=False,
                       rollout_steps=1, env=EnvInfo(4, 2, 1), lr_schedule="constant")
    obs = np.ones((1, 4), np.float32)
    before = agent.policy.predict(obs)
    agent.observe(obs, np.array([1]), np.array([1.0]), obs, np.array([True]), np.array([False]),
                  np.array([True]))
    assert set(agent.learn(1)) >= METRICS
    after = agent.policy.predict(obs)
    assert (after[0, 1] - after[0, 0]) > (before[0, 1] - before[0, 0])


def test_reward_to_go_advantages_mask_reset_rows_and_carry_unfinished_episodes():
    agent = make_agent(baseline="none", normalize_advantages=False, gamma=0.5, rollout_steps=6)
    states, actions, rewards, term, trunc, valid = ro = _rollout()
    feed(agent, ro)
    metrics = agent.learn(12)
    assert set(metrics) >= METRICS and metrics["losses/value_loss"] == 0.0
    adv, mask = agent.last_batch["advantages"], agent.last_batch["mask"]
    # env 0: episode A (t=0,1) is complete; the reset row and the still-running episode B are not used
    assert mask[:, 0].tolist() == [True, True, False, False, False, False]
    # env 1: truncation is the end of the episode without a critic; reset row t=3 masked
    assert mask[:, 1].tolist() == [True, True, True, False, True, True]
    g = reward_to_go(rewards, term, trunc, 0.5, valid=valid)
    assert np.allclose(adv[mask], g[mask])
    assert agent.rollout.offset.tolist() == [3, 0]         # B's three rows wait for the next update

    # Next rollout: B goes on for two more steps and terminates; env 1 plays one 6-step episode.
    rng = np.random.default_rng(1)
    for t in range(6):
        s, s2 = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
        agent.observe(s, np.array([0, 1]), np.ones(2), s2, np.array([t == 1, t == 5]), np.zeros(2, bool),
                      np.array([t != 2, True]))
    agent.learn(24)
    adv, mask = agent.last_batch["advantages"], agent.last_batch["mask"]
    # env 0 column: B = 3 carried rows + 2 new ones (5 rewards of 1), then the reset row, then an
    # unfinished episode of 3 rows
    assert mask[:, 0].tolist() == [True] * 5 + [False] * 4
    assert np.allclose(adv[:5, 0], [1.9375, 1.875, 1.75, 1.5, 1.0])
    assert agent.rollout.offset.tolist() == [3, 0]


def test_value_baseline_bootstraps_truncation_with_the_final_observation():
    agent = make_agent(baseline="value", normalize_advantages=False, gamma=0.5, gae_lambda=1.0,
                       rollout_steps=6, dtype="float64")
    states, actions, rewards, term, trunc, valid = ro = _rollout()
    v = agent.value.predict(states.reshape(-1, 4)).reshape(7, 2)
    feed(agent, ro)
    agent.learn(12)
    adv, mask = agent.last_batch["advantages"], agent.last_batch["mask"]
    assert np.array_equal(mask, valid)
    # env 1, t=2: truncated -> r + gamma V(final obs) - V(s); t=1 adds the discounted reward
    assert adv[2, 1] == pytest.approx(1 + 0.5 * v[3, 1] - v[2, 1])
    assert adv[1, 1] == pytest.approx(1 + 0.5 * (1 + 0.5 * v[3, 1]) - v[1, 1])
    # env 0, last row t=5: the rollout ends mid-episode -> bootstrapped with V(next_obs)
    assert adv[5, 0] == pytest.approx(1 + 0.5 * v[6, 0] - v[5, 0])
    # env 0, t=1: terminated -> no bootstrap
    assert adv[1, 0] == pytest.approx(1 - v[1, 0])
    expected, _ = gae(rewards, v[:6], v[1:], term, trunc, 0.5, 1.0, valid)
    assert np.allclose(adv, expected)
    assert agent.rollout.offset.tolist() == [0, 0]


def test_invalid_rows_do_not_influence_the_update():
    a, b = make_agent(rollout_steps=6), make_agent(rollout_steps=6)
    ro = _rollout()
    states, actions, rewards, term, trunc, valid = ro
    junk_states = states.copy()
    junk_actions = actions.copy()
    junk_states[2, 0] = 1e3                      # obs of env 0's reset row (t=2)
    junk_actions[2, 0] ^= 1
    junk_actions[3, 1] ^= 1                      # env 1's reset row
    feed(a, ro)
    feed(b, (junk_states, junk_actions, rewards, term, trunc, valid))
    # obs of the reset row also appears as next_obs of t=1 (terminated: no bootstrap)
    a.learn(12), b.learn(12)
    assert np.allclose(a.policy.flat_params, b.policy.flat_params, atol=1e-6)
    assert np.allclose(a.value.flat_params, b.value.flat_params, atol=1e-6)


def test_sampling_follows_the_softmax_and_greedy_takes_the_argmax():
    agent = make_agent(env=EnvInfo(4, 3, 1))
    agent.policy.params[-1][...] = [0.0, 1.0, -1.0]   # bias: p = softmax(0, 1, -1) for obs = 0
    obs = np.zeros((30000, 4), np.float32)
    acts = agent.act(obs)
    p = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    assert np.allclose(np.bincount(acts, minlength=3) / len(acts), p, atol=0.01)
    state = agent.rng.bit_generator.state
    assert agent.act(obs[:4], greedy=True).tolist() == [1, 1, 1, 1]
    assert agent.rng.bit_generator.state == state      # greedy acting draws no random numbers


def _same_future(a, b, n_envs, steps=40, seed=3):
    """Both agents act, observe and learn alike on the same random transitions, and end with equal networks."""
    r = np.random.default_rng(seed)
    for t in range(steps):
        obs = r.normal(size=(n_envs, 4)).astype(np.float32)
        nxt = r.normal(size=(n_envs, 4)).astype(np.float32)
        term = r.random(n_envs) < 0.1
        act_a, act_b = a.act(obs, t), b.act(obs, t)
        assert np.array_equal(act_a, act_b)
        for agent, act in ((a, act_a), (b, act_b)):
            agent.observe(obs, act, np.ones(n_envs), nxt, term, np.zeros(n_envs, bool), np.ones(n_envs, bool))
        assert a.learn(t) == b.learn(t)
    for name, net in a.networks().items():
        assert np.array_equal(net.flat_params, b.networks()[name].flat_params)
    assert np.array_equal(a.head.flat_params, b.head.flat_params)


BOX3 = EnvInfo(4, 0, 3, action_dim=2, action_low=(-1.0, -1.0), action_high=(1.0, 1.0))


@pytest.mark.parametrize("baseline,env", [("value", EnvInfo(4, 2, 3)), ("none", EnvInfo(4, 2, 3)), ("none", BOX3)])
def test_state_dict_round_trip_through_a_checkpoint_file(tmp_path, baseline, env):
    kw = dict(baseline=baseline, rollout_steps=8, env=env)
    a = make_agent(seed=0, **kw)
    _same_future(a, make_agent(seed=0, **kw), 3, steps=0)
    r = np.random.default_rng(0)
    for t in range(29):                      # 3 updates and a partial rollout, with carried rows
        obs = r.normal(size=(3, 4)).astype(np.float32)
        a.observe(obs, a.act(obs, t), np.ones(3), obs, r.random(3) < 0.05, np.zeros(3, bool), np.ones(3, bool))
        a.learn(t)
    path = str(tmp_path / "pg.npz")
    save_tree(path, {"step": 1}, {"agent": a.state_dict()})
    _, state = load_tree(path)
    b = make_agent(seed=99, **kw)
    b.load_state_dict(state["agent"])
    assert b.rollout.t == a.rollout.t == 29 % 8 and np.array_equal(a.rollout.offset, b.rollout.offset)
    assert b.updates == a.updates == 3
    _same_future(a, b, 3)


def test_config_validation_and_preset():
    with pytest.raises(ValueError, match="agent.baseline"):
        PGConfig(baseline="critic").validate()
    with pytest.raises(ValueError, match="agent.gae_lambda"):
        PGConfig(gae_lambda=1.5).validate()
    with pytest.raises(cfgmod.ConfigError, match="agent.rollout_steps"):
        cfgmod.update(PGConfig(), {"rollout_steps": 0}, "agent")
    cfg = cfgmod.build("pg", "CartPole-v1")
    assert cfg.preset == "cartpole_pg" and isinstance(cfg.agent, PGConfig)
    assert cfg.run.eval_every <= 5_000


def test_learns_cartpole_quickly(tmp_path):
    # The CartPole preset's agent on a short budget: well above the random agent's ~22 by 12,000 steps.
    result = train_preset_briefly("pg", "CartPole-v1", 12_000, str(tmp_path))
    last = [r for _, r in result.episode_returns[-20:]]
    assert result.evals[-1].mean > 60 or np.mean(last) > 60, (result.evals, last)
