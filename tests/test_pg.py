"""Policy gradient: the REINFORCE loss gradient, advantages over vector rollouts (reset rows,
truncation, carried-over episodes), sampling, exact state round trip and a short learning run."""

from __future__ import annotations

import numpy as np
import pytest

import rlnn
from agents import config as cfgmod
from agents.base import EnvInfo
from agents.loop import RunConfig, train
from agents.pg import PGAgent, PGConfig, clipped_surrogate
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


def _surrogate_case(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, 3))
    actions = rng.integers(0, 3, size=rows)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    # Old log-probabilities 0.5 away on two rows in three: ratios e^-0.5 and e^0.5, past a 0.2 clip.
    old = logp[np.arange(rows), actions] + rng.choice([-0.5, 0.0, 0.5], size=rows)
    return logits, actions, old, rng.normal(size=rows)


def test_clipped_surrogate_gradient_matches_finite_differences():
    logits, actions, old, adv = _surrogate_case()
    loss, grad, clipfrac, _ = clipped_surrogate(logits, actions, old, adv, 0.2)
    z = logits.copy()
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        z[i] += 1e-6
        up = clipped_surrogate(z, actions, old, adv, 0.2)[0]
        z[i] -= 2e-6
        down = clipped_surrogate(z, actions, old, adv, 0.2)[0]
        z[i] += 1e-6
        numeric[i] = (up - down) / 2e-6
    assert np.abs(grad - numeric).max() < 1e-8
    # The loss itself: -mean min(r A, clip(r) A), and the rows past the clip are counted.
    ratio = np.exp(np.log(softmax_rows(logits))[np.arange(40), actions] - old)
    assert loss == pytest.approx(-np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv).mean(), rel=1e-12)
    assert clipfrac == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))
    assert 0.3 < clipfrac < 0.9


def softmax_rows(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_clipped_surrogate_is_reinforce_at_ratio_one_and_stops_past_the_clip():
    logits, actions, _, adv = _surrogate_case()
    rows = np.arange(40)
    logp = np.log(softmax_rows(logits))[rows, actions]
    _, grad, clipfrac, kl = clipped_surrogate(logits, actions, logp, adv, 0.2)
    _, reinforce = rlnn.losses.softmax_cross_entropy(logits, actions, weights=adv)
    assert np.allclose(grad, reinforce, atol=1e-14) and clipfrac == 0 and kl == pytest.approx(0, abs=1e-14)
    # The ratio moved past 1 + eps where A > 0 (or below 1 - eps where A < 0): no more pull on that row;
    # moved the other way, the row still pulls back.
    past = np.where(adv > 0, logp - 0.5, logp + 0.5)
    _, grad, _, _ = clipped_surrogate(logits, actions, past, adv, 0.2)
    assert np.all(grad == 0)
    behind = np.where(adv > 0, logp + 0.5, logp - 0.5)
    _, grad, _, _ = clipped_surrogate(logits, actions, behind, adv, 0.2)
    assert np.all(np.abs(grad).sum(1) > 0)


def test_clipped_update_takes_epochs_of_minibatch_steps_and_checks_gradients():
    agent = make_agent(clip_coef=0.2, update_epochs=3, num_minibatches=4, rollout_steps=8, hidden_sizes=[8],
                       value_hidden_sizes=[8], dtype="float64", lr=0.1,
                       lr_schedule="constant")
    rng = np.random.default_rng(1)
    for _ in range(8):
        obs = rng.normal(size=(2, 4))
        agent.observe(obs, agent.act(obs), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool))
    metrics = agent.learn(step=16)
    assert agent.policy_opt.step_count == agent.value_opt.step_count == 3 * 4
    assert {"losses/clipfrac", "losses/approx_kl", "losses/explained_variance"} <= metrics.keys()
    assert metrics["losses/clipfrac"] > 0            # later minibatches see a policy moved by earlier ones (lr 0.1)
    batch = {"obs": rng.normal(size=(10, 4)), "actions": rng.integers(0, 2, 10), "rewards": np.ones(10),
             "terminated": np.eye(10, dtype=bool)[4], "truncated": np.zeros(10, bool)}
    checks = agent.gradient_checks(batch)
    assert {"policy_loss", "clipped_surrogate", "value_loss"} <= checks.keys()
    for net, closure in checks.values():
        closure()
        assert rlnn.gradcheck(closure, net.flat_params, net.flat_grads.copy()) < 1e-6


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
    r = np.random.default_rng(seed)
    for t in range(steps):
        obs = r.normal(size=(n_envs, 4)).astype(np.float32)
        nxt = r.normal(size=(n_envs, 4)).astype(np.float32)
        term = r.random(n_envs) < 0.1
        act_a, act_b = a.act(obs, t), b.act(obs, t)
        assert np.array_equal(act_a, act_b)
        for agent in (a, b):
            agent.observe(obs, act_a, np.ones(n_envs), nxt, term, np.zeros(n_envs, bool), np.ones(n_envs, bool))
        assert a.learn(t) == b.learn(t)
    for name, net in a.networks().items():
        assert np.array_equal(net.flat_params, b.networks()[name].flat_params)


@pytest.mark.parametrize("baseline", ["value", "none"])
def test_state_dict_round_trip_through_a_checkpoint_file(tmp_path, baseline):
    kw = dict(baseline=baseline, rollout_steps=8, env=EnvInfo(4, 2, 3))
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
    cfg = cfgmod.build("pg", "CartPole-v1")
    run = RunConfig(total_steps=12_000, num_envs=cfg.run.num_envs, eval_every=12_000, eval_episodes=5,
                    checkpoint_every=10**6, log_every=2_000, logdir=str(tmp_path))
    result = train("pg", run, cfg.agent, console=False)
    last = [r for _, r in result.episode_returns[-20:]]
    assert result.evals[-1].mean > 60 or np.mean(last) > 60, (result.evals, last)
