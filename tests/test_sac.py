"""SAC: the tanh-squashed Gaussian head, the actor's gradient through the critics, acting, learning, refusals."""

from __future__ import annotations

import os

import numpy as np
import pytest

from agents.base import EnvInfo
from agents.heads import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussian
from agents.sac import SACAgent, SACConfig
from rlnn.gradcheck import numerical_gradient, relative_error

PENDULUM = EnvInfo(obs_dim=3, num_actions=0, num_envs=1, action_dim=1, action_low=(-2.0,), action_high=(2.0,))
BOX2 = EnvInfo(obs_dim=5, num_actions=0, num_envs=1, action_dim=2, action_low=(-1.0, 0.0), action_high=(1.0, 3.0))


def _head_inputs(rng, B=7, m=2):
    out = rng.normal(0, 1.0, (B, 2 * m))
    noise = rng.standard_normal((B, m))
    return out, noise


# ------------------------------------------------------------------ the head
def test_log_prob_is_the_change_of_variables_density():
    # log pi(a) = log N(u; mean, std) - sum log |da/du|, with a = scale tanh(u) + offset: written out plainly
    rng = np.random.default_rng(0)
    head = SquashedGaussian(BOX2.action_low, BOX2.action_high, np.float64)
    out, noise = _head_inputs(rng)
    actions, log_probs = head.sample(out, noise)
    mean, log_std = out[:, :2], head.log_std(out[:, 2:])
    std = np.exp(log_std)
    u = mean + std * noise
    gauss = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    jacobian = head.scale * (1 - np.tanh(u) ** 2)
    np.testing.assert_allclose(log_probs, (gauss - np.log(jacobian)).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(actions, head.scale * np.tanh(u) + head.offset, rtol=1e-12)
    assert ((actions >= np.array(BOX2.action_low)) & (actions <= np.array(BOX2.action_high))).all()


def test_the_density_integrates_to_one_over_the_box():
    # One dimension, box [-2, 2]: exp(log pi(a)) summed over a fine grid of a is 1.
    head = SquashedGaussian((-2.0,), (2.0,), np.float64)
    mean, raw = 0.3, -0.4
    a = np.linspace(-2, 2, 400_001)[1:-1]
    std = np.exp(head.log_std(np.array(raw)))
    u = np.arctanh(a / 2)
    noise = ((u - mean) / std)[:, None]
    out = np.tile([mean, raw], (len(a), 1))
    actions, log_probs = head.sample(out, noise)
    np.testing.assert_allclose(actions[:, 0], a, atol=1e-12)
    assert np.trapezoid(np.exp(log_probs), a) == pytest.approx(1.0, abs=1e-4)


def test_log_std_is_squashed_into_its_bounds():
    head = SquashedGaussian((-1.0,), (1.0,), np.float64)
    log_std = head.log_std(np.array([-1e3, 0.0, 1e3]))
    np.testing.assert_allclose(log_std, [LOG_STD_MIN, (LOG_STD_MIN + LOG_STD_MAX) / 2, LOG_STD_MAX])


def test_head_backward_matches_finite_differences():
    # L = sum w_a * a + sum w_lp * log pi, a function of the actor's outputs with the noise fixed
    rng = np.random.default_rng(1)
    head = SquashedGaussian(BOX2.action_low, BOX2.action_high, np.float64)
    out, noise = _head_inputs(rng)
    w_a, w_lp = rng.normal(size=(7, 2)), rng.normal(size=7)

    def loss():
        actions, log_probs = head.sample(out, noise)
        return float((w_a * actions).sum() + (w_lp * log_probs).sum())

    loss()
    analytic = head.backward(w_a, w_lp)
    numeric = numerical_gradient(loss, out)
    assert relative_error(analytic, numeric) < 1e-7


def test_action_and_mode_agree_with_sample():
    rng = np.random.default_rng(2)
    head = SquashedGaussian(BOX2.action_low, BOX2.action_high, np.float64)
    out, noise = _head_inputs(rng)
    np.testing.assert_array_equal(head.action(out, noise), head.sample(out, noise)[0])
    np.testing.assert_allclose(head.mode(out), head.sample(out, np.zeros_like(noise))[0], rtol=1e-12)


# ------------------------------------------------------- the agent's gradients
def _agent(env_info=BOX2, activation="tanh", seed=0, **kw):
    cfg = SACConfig(hidden_sizes=[16, 16], activation=activation, dtype="float64", **kw)
    return SACAgent(cfg, env_info, np.random.default_rng(seed))


def _batch(agent, n=24, seed=3):
    rng = np.random.default_rng(seed)
    info = agent.env_info
    return {"obs": rng.normal(size=(n, info.obs_dim)), "next_obs": rng.normal(size=(n, info.obs_dim)),
            "actions": rng.uniform(info.action_low, info.action_high, size=(n, info.action_dim)),
            "rewards": rng.normal(size=n), "terminated": rng.random(n) < 0.2, "truncated": np.zeros(n, bool)}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_actor_gradient_through_the_critics_matches_finite_differences(activation):
    # The actor's loss mean(alpha log pi - min_i Q_i(s, a~)): through each critic's input into a~, through
    # tanh and the log-det correction, into mean and log-std, then the actor's MLP (float64).
    agent = _agent(activation=activation, alpha=0.3)
    checks = agent.gradient_checks(_batch(agent))
    for name, (net, closure) in checks.items():
        closure()
        analytic = net.flat_grads.copy()
        numeric = numerical_gradient(closure, net.flat_params, eps=1e-7)
        err = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
        assert err < 1e-6, (name, err)
    assert set(checks) == {"critic_loss/q1", "critic_loss/q2", "actor_loss"}


def test_both_critics_share_the_actor_gradient_where_each_is_the_minimum():
    # Make Q_2 the larger critic on every row: the actor's gradient is then Q_1's alone.
    agent = _agent()
    agent.q2.params[-1][...] += 1e3
    obs, noise = _batch(agent)["obs"], np.random.default_rng(0).standard_normal((24, 2))
    agent.actor_loss_and_grad(obs, noise, 0.2)
    both = agent.actor.flat_grads.copy()
    agent.q2.flat_params[...] = agent.q1.flat_params + 0.0
    agent.q2.params[-1][...] += 1e3
    agent.actor_loss_and_grad(obs, noise, 0.2)
    np.testing.assert_allclose(agent.actor.flat_grads, both, rtol=1e-12)


# --------------------------------------------------------------------- acting
def test_actions_lie_in_the_box_and_greedy_draws_nothing():
    agent = _agent(learning_starts=0)
    for n in (1, 3):
        obs = np.random.default_rng(n).normal(size=(n, 5)) * 10
        actions = agent.act(obs, step=10)
        assert actions.shape == (n, 2)
        assert ((actions >= [-1.0, 0.0]) & (actions <= [1.0, 3.0])).all()
        state = agent.rng.bit_generator.state
        greedy = agent.act(obs, greedy=True)
        assert agent.rng.bit_generator.state == state and greedy.shape == (n, 2)
        np.testing.assert_array_equal(greedy, agent.act(obs, greedy=True))


def test_uniform_random_actions_before_learning_starts_and_no_update():
    agent = _agent(learning_starts=500, batch_size=8)
    obs = np.zeros((4, 5))
    actions = np.concatenate([agent.act(obs, step=s) for s in range(0, 500, 4)])
    assert actions[:, 1].min() < 0.3 and actions[:, 1].max() > 2.7     # spread over [0, 3], not squashed near a mean
    for s in range(4, 500, 4):
        agent.observe(obs, actions[:4], np.zeros(4), obs, np.zeros(4, bool), np.zeros(4, bool), np.ones(4, bool))
        assert agent.learn(s) == {}
    assert agent.updates == 0
    agent.observe(obs, actions[:4], np.zeros(4), obs, np.zeros(4, bool), np.zeros(4, bool), np.ones(4, bool))
    metrics = agent.learn(500)      # 4 envs: the rounds of env steps 497-500 (one gradient step per env step)
    assert agent.updates == 4 and {"losses/qf_loss", "losses/actor_loss", "losses/alpha"} <= set(metrics)


def test_without_uniform_warmup_the_initial_policy_acts_before_learning_starts():
    obs = np.random.default_rng(0).normal(size=(4, 5))
    warm = _agent(learning_starts=500, uniform_warmup=False, log_std_init=-3.0)
    policy = _agent(learning_starts=0, log_std_init=-3.0)
    np.testing.assert_array_equal(warm.act(obs, step=0), policy.act(obs, step=0))
    assert np.ptp(warm.act(np.zeros((64, 5)), step=1)[:, 1]) < 0.5     # the policy's narrow spread, not uniform


def test_the_temperature_moves_towards_the_target_entropy():
    # An entropy above the target lowers alpha; below it raises alpha.
    for target, direction in ((-10.0, -1), (10.0, 1)):
        agent = _agent(learning_starts=0, batch_size=16, target_entropy=target)
        rng = np.random.default_rng(0)
        for s in range(1, 41):
            obs = rng.normal(size=(1, 5))
            agent.observe(obs, agent.act(obs, s), rng.normal(size=1), obs, np.zeros(1, bool), np.zeros(1, bool),
                          np.ones(1, bool))
            agent.learn(s)
        assert np.sign(np.log(agent.alpha)) == direction


# ------------------------------------------------------------------ learning
def test_sac_learns_pendulum_in_a_few_thousand_steps(tmp_path):
    from agents.config import RunConfig
    from agents.loop import train

    cfg = RunConfig(env_id="Pendulum-v1", seed=0, total_steps=3_000, eval_every=1_000, eval_episodes=5,
                    checkpoint_every=3_000, network_log_every=1_000, logdir=str(tmp_path))
    agent_cfg = SACConfig(hidden_sizes=[64, 64], lr=1e-3, batch_size=128, buffer_size=3_000)
    result = train("sac", cfg, agent_cfg, console=False)
    first, last = result.evals[0].mean, result.evals[-1].mean
    assert last > first + 300 and last > -700, [e.mean for e in result.evals]
    from conftest import read_scalars

    tags = set(read_scalars(result.run_dir))
    assert {"losses/qf_loss", "losses/actor_loss", "losses/alpha", "network/actor/layer1/update_ratio",
            "network/q1/layer3/grad_norm"} <= tags


# ------------------------------------------------------------------ refusals
def test_sac_on_a_discrete_env_is_refused_before_anything_starts(capsys, tmp_path):
    from experiments.cli import main

    code = main(["compare", "--envs", "MountainCarContinuous-v0,CartPole-v1", "--algos", "sac", "--seeds", "1",
                 "--logdir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rlnn: error: CartPole-v1: sac needs a Box action space") and "\n" not in err
    assert not os.listdir(tmp_path)


def test_check_gradients_command_covers_sac(capsys):
    from experiments.cli import main

    assert main(["check-gradients", "--algo", "sac", "--env", "Pendulum-v1", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "critic_loss/q1" in out and "critic_loss/q2" in out and "actor_loss" in out and "OK" in out


# -------------------------------------------------------------------- resume
@pytest.mark.parametrize("num_envs, noise_repeat", [(1, 1), (2, 1), (1, 7)])
def test_resume_equals_uninterrupted_bit_for_bit(small_run, num_envs, noise_repeat):
    # Stop at 1,500 steps, resume until 3,000: the same networks, optimizer moments, temperature, buffer,
    # held exploration noise and returns as 3,000 steps at once (1,500 is not a multiple of noise_repeat).
    from test_loop import _params, _returns

    from agents.loop import train

    agent_cfg = SACConfig(hidden_sizes=[16, 16], batch_size=32, buffer_size=5_000, learning_starts=300,
                          noise_repeat=noise_repeat)
    run = dict(env_id="Pendulum-v1", seed=1, num_envs=num_envs, checkpoint_every=700, eval_every=900)
    cfg = small_run(total_steps=3_000, **run)
    whole = train("sac", cfg, agent_cfg, run_dir=cfg.logdir + "/whole", console=False)
    half = train("sac", small_run(total_steps=1_500, **run), agent_cfg, run_dir=cfg.logdir + "/split", console=False)
    resumed = train("sac", cfg, agent_cfg, run_dir=half.run_dir, resume=True, console=False)
    assert resumed.step == whole.step
    pw, pr = _params(whole.run_dir), _params(resumed.run_dir)
    assert pw.keys() == pr.keys()
    assert {"actor/flat_params", "q1_target/flat_params", "alpha_opt/exp_avg", "log_alpha", "replay/actions"} <= set(pw)
    for key in pw:
        assert np.array_equal(pw[key], pr[key]), key
    assert _returns(whole.run_dir) == _returns(resumed.run_dir)


def test_noise_repeat_holds_each_draw_for_that_many_steps():
    obs = np.zeros((3, 5))
    agent = _agent(BOX2, noise_repeat=4, learning_starts=0)
    held = [agent.exploration_noise(3, 2).copy() for _ in range(9)]
    for start in (0, 4):
        for k in range(1, 4):
            np.testing.assert_array_equal(held[start + k], held[start])
    assert not np.array_equal(held[4], held[0]) and not np.array_equal(held[8], held[4])
    # the same state acts alike while a draw is held, and differently after it
    agent = _agent(BOX2, noise_repeat=4, learning_starts=0)
    acts = [agent.act(obs, step=10) for _ in range(4)]
    assert all(np.array_equal(a, acts[0]) for a in acts) and not np.array_equal(agent.act(obs, step=10), acts[0])


def test_log_std_init_sets_the_starting_spread():
    agent = _agent(BOX2, log_std_init=1.0)
    out = agent.actor.predict(np.zeros((1, 5)))
    np.testing.assert_allclose(agent.head.log_std(out[:, 2:]), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"agent.log_std_init = 2.5: must be in \(-5, 2\)"):
        _agent(BOX2, log_std_init=2.5)


def test_the_script_api_predicts_action_vectors(tmp_path):
    import agents

    run = agents.train("sac", env="Pendulum-v1", seed=0, total_steps=400, logdir=str(tmp_path), quiet=True,
                       set={"run.eval_episodes": 2, "agent.batch_size": 32, "agent.hidden_sizes": [16, 16]})
    obs = np.random.default_rng(0).normal(size=(5, 3))
    (one, _), (batch, _) = run.predict(obs[0], deterministic=True), run.predict(obs, deterministic=True)
    assert one.shape == (1,) and batch.shape == (5, 1) and np.abs(batch).max() <= 2.0
    np.testing.assert_array_equal(one, batch[0])
    np.testing.assert_array_equal(agents.load(run.run_dir).predict(obs, deterministic=True)[0], batch)
    sampled, _ = run.predict(obs)
    assert sampled.shape == (5, 1) and np.abs(sampled).max() <= 2.0 and not np.array_equal(sampled, batch)
