"""DQN: the training step's TD target (termination vs truncation, Double DQN), gradient checks,
schedules, target updates, exact state round trip, and a short learning run on CartPole."""

from __future__ import annotations

import numpy as np
import pytest

from agents import config as cfgmod
from agents.base import EnvInfo
from agents.dqn import DQNAgent, DQNConfig
from agents.loop import RunConfig, train
from agents.nstep import NStepQueue
from rlnn import losses
from rlnn.gradcheck import numerical_gradient
from rlnn.checkpoint import load_tree, save_tree

ENV = EnvInfo(obs_dim=4, num_actions=2, num_envs=2)


def make_agent(seed=0, env=ENV, **kw):
    return DQNAgent(DQNConfig(**kw), env, np.random.default_rng(seed))


def feed(agent, rng, n_vector_steps, step=0, terminate_every=7):
    """Random transitions into the agent (N envs per vector step), some terminated, some truncated.

    ``step`` is the env-step counter at the start, as the loop keeps it; returns it at the end.
    """
    n = agent.env_info.num_envs
    for t in range(n_vector_steps):
        obs = rng.normal(size=(n, 4)).astype(np.float32)
        nxt = rng.normal(size=(n, 4)).astype(np.float32)
        term = np.full(n, t % terminate_every == terminate_every - 1)
        trunc = np.full(n, t % 11 == 10)
        agent.observe(obs, agent.act(obs, step), rng.normal(size=n), nxt, term, trunc, np.ones(n, bool))
        step += n
    return step


def constant_q_agent(q_values, target_values, **kw):
    """A one-env agent, batch of one, whose online and target nets output the given constants (every
    weight 0, the output bias the values), so a training step's TD target is known in closed form."""
    kw = dict(env=EnvInfo(4, 2, 1), batch_size=1, learning_starts=0, loss="l2", gamma=0.9, max_grad_norm=0.0,
              **kw)
    agent = make_agent(**kw)
    for net, values in ((agent.q, q_values), (agent.target, target_values)):
        net.flat_params[:] = 0
        net.biases[-1][:] = values
    return agent


# Q(s, .) = Q(s', .) = [2, 1] online, [1, 5] target; the transition: action 0, reward 1, gamma 0.9.
# Double DQN: a* = argmax online = 0, evaluated by the target: 1; DQN: max target = 5; terminal: no bootstrap.
@pytest.mark.parametrize("double,terminated,truncated,reward_scale,y", [
    (True, False, False, 1.0, 1 + 0.9 * 1), (False, False, False, 1.0, 1 + 0.9 * 5),
    (True, True, False, 1.0, 1.0), (False, True, False, 1.0, 1.0),
    (True, False, True, 1.0, 1 + 0.9 * 1), (False, False, True, 1.0, 1 + 0.9 * 5),     # a time limit bootstraps
    (True, False, False, 0.5, 0.5 + 0.9 * 1), (False, True, False, 0.5, 0.5)])
def test_a_training_step_regresses_q_sa_onto_the_td_target(double, terminated, truncated, reward_scale, y):
    agent = constant_q_agent([2.0, 1.0], [1.0, 5.0], double_dqn=double, reward_scale=reward_scale)
    obs = np.ones((1, 4), np.float32)
    agent.observe(obs, np.array([0]), np.array([1.0]), obs, np.array([terminated]), np.array([truncated]),
                  np.array([True]))
    metrics = agent.train(1)
    assert metrics["losses/q_values"] == 2.0                          # Q(s, a) of the action taken
    assert metrics["losses/td_loss"] == pytest.approx((2.0 - y) ** 2, rel=1e-6)
    # Only Q(s, a) is in the loss: the step moves the output bias of action 0, not that of action 1.
    assert agent.q.biases[-1][0] != 2.0 and agent.q.biases[-1][1] == 1.0
    assert agent.updates == 1


def test_transitions_are_stored_with_termination_not_truncation_as_terminal():
    # The agent stores a truncated transition as not terminal, a terminated one as terminal,
    # and drops the invalid reset row.
    agent = make_agent(learning_starts=0)
    obs = np.zeros((2, 4), np.float32)
    agent.observe(obs, np.array([0, 1]), np.array([1.0, 1.0]), obs + 1, np.array([True, False]),
                  np.array([False, True]), np.array([True, True]))
    agent.observe(obs, np.array([0, 1]), np.array([0.0, 0.0]), obs, np.array([False, False]),
                  np.array([False, False]), np.array([False, True]))
    assert agent.buffer.size == 3
    assert agent.buffer.terminated[:3].tolist() == [1.0, 0.0, 0.0]
    assert np.array_equal(agent.buffer.next_obs[:2], obs + 1)
    assert agent.buffer.added == 3


def _nstep_reference(episodes, n, gamma):
    """Brute force: every transition's n-step row {obs id: (R, next id, bootstrap)} from whole episodes,
    each a list of (obs id, reward, next id) and whether it terminated."""
    rows = {}
    for steps, terminated in episodes:
        T = len(steps)
        for t in range(T):
            m = min(n, T - t)
            R = sum(gamma ** k * steps[t + k][1] for k in range(m))
            bootstrap = 0.0 if (t + m == T and terminated) else gamma ** m
            rows[steps[t][0]] = (R, steps[t + m - 1][2], bootstrap)
    return rows


@pytest.mark.parametrize("n", [1, 3])
def test_nstep_rows_fold_rewards_and_stop_at_episode_ends(n):
    # Two envs, NEXT_STEP autoreset (an invalid row after each episode end), episodes that terminate
    # and ones that are truncated, some shorter than n. Observations carry an id to match rows.
    gamma, rng = 0.9, np.random.default_rng(0)
    queue = NStepQueue(n, 2, 1, gamma, obs_dtype=np.float64)
    lengths = {0: [2, 5, 1, 4], 1: [7, 3, 1]}
    ends = {0: [True, False, True, False], 1: [False, True, True]}
    episodes, out, ids = [], [], iter(range(1, 10_000))
    state = {e: {"ep": 0, "t": 0, "steps": [], "obs": next(ids), "reset": False} for e in (0, 1)}
    while any(st["ep"] < len(lengths[e]) for e, st in state.items()):
        obs, nxt, rew = np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2)
        term, trunc, valid = np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool)
        for e, st in state.items():
            if st["ep"] >= len(lengths[e]) or st["reset"]:
                valid[e], st["reset"] = False, False
                st["obs"] = next(ids)
                continue
            obs[e], nxt[e], rew[e] = st["obs"], next(ids), rng.normal()
            st["steps"].append((int(obs[e, 0]), rew[e], int(nxt[e, 0])))
            st["obs"], st["t"] = int(nxt[e, 0]), st["t"] + 1
            if st["t"] == lengths[e][st["ep"]]:
                term[e], trunc[e] = ends[e][st["ep"]], not ends[e][st["ep"]]
                episodes.append((st["steps"], bool(term[e])))
                st.update(ep=st["ep"] + 1, t=0, steps=[], reset=True)
        out.append(queue.add(obs, np.zeros(2, np.int64), rew, nxt, term, trunc, valid))
    o, _, R, nx, term_col = (np.concatenate(x) for x in zip(*out))
    expected = _nstep_reference(episodes, n, gamma)
    assert sorted(o[:, 0].astype(int)) == sorted(expected)             # every transition leaves once
    for i, key in enumerate(o[:, 0].astype(int)):
        R_ref, next_ref, bootstrap = expected[key]
        assert R[i] == pytest.approx(R_ref) and nx[i, 0] == next_ref
        # The one-step target formula r + gamma (1 - terminated) Q gives the n-step one.
        assert gamma * (1 - term_col[i]) == pytest.approx(bootstrap)
    assert queue.count.sum() == 0


def test_nstep_common_step_path_gives_the_general_paths_rows_bit_for_bit():
    # ``add`` takes a slice-only path when every env runs on with n - 1 transitions waiting; a queue
    # that always takes the general path (``_add``) must give the same rows, bits and dtypes included.
    n, num_envs, rng = 3, 4, np.random.default_rng(2)
    fast, general = (NStepQueue(n, num_envs, 4, 0.97) for _ in range(2))
    prev_done, steady_steps = np.zeros(num_envs, bool), 0
    obs = rng.normal(size=(num_envs, 4)).astype(np.float32)
    for _ in range(2_000):
        nxt = rng.normal(size=(num_envs, 4)).astype(np.float32)
        actions, rewards = rng.integers(0, 2, num_envs), rng.normal(size=num_envs)
        term, trunc = rng.random(num_envs) < 0.03, rng.random(num_envs) < 0.02
        valid = ~prev_done
        steady_steps += fast._steady and valid.all() and not (term.any() or trunc.any())
        a = fast.add(obs, actions, rewards, nxt, term, trunc, valid)
        b = general._add(obs, actions, rewards, nxt, term, trunc, valid)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        prev_done, obs = term | trunc, nxt
    assert 500 < steady_steps < 2_000          # both paths were taken


def test_nstep_agent_learns_from_folded_rows_and_checkpoints_the_queue(tmp_path):
    agent = make_agent(n_step=3, env=EnvInfo(4, 2, 2))
    obs = np.ones((2, 4), np.float32)
    step = lambda: agent.observe(obs, np.array([0, 1]), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool),
                                 np.ones(2, bool))
    step(), step()
    assert agent.buffer.size == 0                    # two rewards wait for a third
    step()
    assert agent.buffer.size == 2 and np.allclose(agent.buffer.rewards[:2], 1 + agent.config.gamma + agent.config.gamma ** 2)
    step()
    save_tree(str(tmp_path / "a.npz"), {}, {"agent": agent.state_dict()})
    other = make_agent(n_step=3, env=EnvInfo(4, 2, 2), seed=5)
    other.load_state_dict(load_tree(str(tmp_path / "a.npz"))[1]["agent"])
    assert np.array_equal(other.nstep.count, agent.nstep.count) and np.array_equal(other.nstep.rewards, agent.nstep.rewards)


@pytest.mark.parametrize("double", [True, False])
def test_gradient_step_regresses_onto_the_documented_target(double):
    agent = make_agent(double_dqn=double, batch_size=32, loss="l2", learning_starts=0, gamma=0.9)
    feed(agent, np.random.default_rng(1), 50)
    agent.q.flat_params += np.random.default_rng(2).normal(0, 0.3, agent.q.flat_params.shape).astype(np.float32)
    rng = np.random.default_rng()
    rng.bit_generator.state = agent.rng.bit_generator.state
    obs, act, rew, nxt, term = (x[0].copy() for x in agent.buffer.sample(32, rng, 1))
    rows = np.arange(32)
    qt, qo = agent.target.predict(nxt), agent.q.predict(nxt)
    y_double = rew + 0.9 * (1 - term) * qt[rows, qo.argmax(1)]
    y_vanilla = rew + 0.9 * (1 - term) * qt.max(1)
    assert not np.allclose(y_double, y_vanilla)       # the case discriminates
    q_sa = agent.q.predict(obs)[rows, act]
    expected = losses.l2(q_sa, y_double if double else y_vanilla)[0]
    other = losses.l2(q_sa, y_vanilla if double else y_double)[0]
    before = agent.q.flat_params.copy()
    metrics = agent.train(1)
    loss, q_mean = metrics["losses/td_loss"], metrics["losses/q_values"]
    assert loss == pytest.approx(expected, rel=1e-5) and loss != pytest.approx(other, rel=1e-3)
    assert q_mean == pytest.approx(float(q_sa.mean()), rel=1e-5)
    assert not np.array_equal(before, agent.q.flat_params)


def test_epsilon_schedule_and_exploration():
    agent = make_agent(start_e=1.0, end_e=0.1, exploration_steps=1000)
    assert agent.epsilon(0) == 1.0
    assert agent.epsilon(500) == pytest.approx(0.55)
    assert agent.epsilon(1000) == pytest.approx(0.1) and agent.epsilon(10**6) == pytest.approx(0.1)
    # epsilon = 1 (step 0): uniformly random actions
    obs = np.zeros((1000, 4), np.float32)
    acts = agent.act(obs, 0)
    assert acts.dtype.kind == "i" and 400 < (acts == 1).sum() < 600
    # greedy: the argmax, and no random number drawn
    state = agent.rng.bit_generator.state
    greedy = agent.act(obs[:5], greedy=True)
    assert agent.rng.bit_generator.state == state
    assert np.array_equal(greedy, agent.q.predict(obs[:5]).argmax(1))
    # one env (its own code path): epsilon = 1 is uniform, epsilon = 0 is the greedy action
    one = np.array([[0.1, -0.2, 0.3, 0.0]], np.float32)
    acts = np.concatenate([agent.act(one, 0) for _ in range(1000)])
    assert acts.shape == (1000,) and acts.dtype.kind == "i" and 400 < (acts == 1).sum() < 600
    greedy_one = agent.q.predict(one).argmax(1)
    agent.epsilon_schedule = type(agent.epsilon_schedule)(0.0, 0.0, 1)
    assert all(np.array_equal(agent.act(one, 10**6), greedy_one) for _ in range(20))
    assert agent.act(one, 10**6).dtype == greedy_one.dtype
    # its random action is the draw rng.integers(0, K, size=1) would make, with the same generator state
    agent.epsilon_schedule = type(agent.epsilon_schedule)(0.5, 0.5, 1)
    twin = np.random.default_rng(0)
    twin.bit_generator.state = agent.rng.bit_generator.state
    for _ in range(300):
        act = agent.act(one, 0)
        expected = twin.integers(0, 2, size=1) if twin.random() < 0.5 else greedy_one
        assert np.array_equal(act, expected) and act.dtype == expected.dtype and act.shape == (1,)
    assert agent.rng.bit_generator.state == twin.bit_generator.state
    agent.epsilon_schedule = type(agent.epsilon_schedule)(1.0, 0.1, 1000)
    # after the decay (step 5000): ~ (1 - 0.1) + 0.1 / 2 of the actions are greedy
    x = np.random.default_rng(0).normal(size=(4000, 4)).astype(np.float32)
    agreement = (agent.act(x, 5000) == agent.act(x, greedy=True)).mean()
    assert 0.92 < agreement < 0.98
    # the step decides epsilon: at step 0 the same observations get random actions
    assert (agent.act(x, 0) == agent.act(x, greedy=True)).mean() < 0.6


def test_replay_ratio_and_target_updates_with_several_envs():
    agent = make_agent(env=EnvInfo(4, 2, 4), learning_starts=40, batch_size=8, train_freq=8, gradient_steps=3,
                       target_update_interval=20, tau=1.0)
    rng = np.random.default_rng(0)
    step = 0
    copies = 0
    for _ in range(25):
        step = feed(agent, rng, 1, step)
        target_before = agent.target.flat_params.copy()
        metrics = agent.learn(step)
        if metrics:
            assert metrics["charts/epsilon"] == agent.epsilon(step)   # logged at the loop's step
        if not np.array_equal(target_before, agent.target.flat_params):
            copies += 1
            assert np.array_equal(agent.target.flat_params, agent.q.flat_params)
    # 100 steps; learning from step 40 (buffer of 40): rounds at 40, 48, ..., 96 -> 8 rounds x 3
    assert agent.updates == 8 * 3
    assert copies == 4            # at steps 40 (right after the first round), 60, 80, 100
    soft = make_agent(learning_starts=0, batch_size=4, target_update_interval=1, tau=0.25)
    feed(soft, rng, 4)
    before = soft.target.flat_params.copy()
    soft.learn(1)                 # one gradient step, then one Polyak update
    assert np.allclose(soft.target.flat_params, 0.25 * soft.q.flat_params + 0.75 * before, atol=1e-6)


def _same_future(a, b, rng_seed, step, n_vector_steps=30):
    """Feed both agents identical observations from env step ``step`` on; compare their actions, metrics
    and parameters."""
    r1, r2 = np.random.default_rng(rng_seed), np.random.default_rng(rng_seed)
    for t in range(n_vector_steps):
        obs1 = r1.normal(size=(2, 4)).astype(np.float32)
        obs2 = r2.normal(size=(2, 4)).astype(np.float32)
        a1, a2 = a.act(obs1, step), b.act(obs2, step)
        assert np.array_equal(a1, a2)
        for agent, obs, act in ((a, obs1, a1), (b, obs2, a2)):
            agent.observe(obs, act, np.ones(2), obs * 0.9, np.array([t % 9 == 8, False]),
                          np.array([False, t % 13 == 12]), np.ones(2, bool))
        step += 2
        assert a.learn(step) == b.learn(step)
    assert np.array_equal(a.q.flat_params, b.q.flat_params)
    assert np.array_equal(a.target.flat_params, b.target.flat_params)


def test_state_dict_round_trip_through_a_checkpoint_file(tmp_path):
    kw = dict(learning_starts=20, batch_size=16, target_update_interval=10, exploration_steps=100)
    a = make_agent(seed=0, **kw)
    step = feed(a, np.random.default_rng(0), 40)
    for s in range(2, step + 2, 2):
        a.learn(s)
    path = str(tmp_path / "a.npz")
    save_tree(path, {"step": step}, {"agent": a.state_dict()})
    _, state = load_tree(path)
    assert "steps" not in state["agent"]["counters"]     # the loop's step is the only env-step counter
    b = make_agent(seed=123, **kw)      # different init and generator: everything must be overwritten
    b.load_state_dict(state["agent"])
    assert b.updates == a.updates > 0 and b.buffer.size == a.buffer.size
    _same_future(a, b, 7, step)


def test_without_replay_in_checkpoint_learning_waits_for_a_refill():
    kw = dict(learning_starts=20, batch_size=16, checkpoint_replay_buffer=False)
    a = make_agent(**kw)
    step = feed(a, np.random.default_rng(0), 20)
    state = a.state_dict()
    assert "replay" not in state
    b = make_agent(**kw)
    b.load_state_dict(state)
    assert b.buffer.size == 0 and b.learn(step + 2) == {}
    step = feed(b, np.random.default_rng(1), 10, step)          # 20 rows again: learning resumes
    assert b.learn(step) != {}


def test_config_validation_and_preset():
    with pytest.raises(ValueError, match="agent.loss"):
        DQNConfig(loss="mse").validate()
    with pytest.raises(ValueError, match="agent.tau"):
        DQNConfig(tau=0.0).validate()
    with pytest.raises(cfgmod.ConfigError, match="agent.batch_size"):
        cfgmod.update(DQNConfig(), {"batch_size": 0}, "agent")
    cfg = cfgmod.build("dqn", "CartPole-v1")
    assert cfg.preset == "cartpole_dqn" and isinstance(cfg.agent, DQNConfig)
    cfg.agent.validate()
    # The bar: solved within 50k env steps, and evaluated often enough to see when.
    assert 20_000 <= cfg.run.total_steps <= 50_000 and cfg.run.eval_every <= 5_000


def test_a_round_of_gradient_steps_equals_one_step_at_a_time():
    # A round draws its batches and evaluates Q_target(s', .) in one go; Double DQN's online argmax must
    # still come from each step's current parameters, as rounds of one step each would have it.
    kw = dict(batch_size=16, learning_starts=0, double_dqn=True, gamma=0.9, lr=1e-2)
    a = make_agent(**kw)
    feed(a, np.random.default_rng(0), 30)
    a.target.flat_params += 0.1            # target != online, so every step's targets matter
    b = make_agent(seed=5, **kw)
    b.load_state_dict(a.state_dict())
    last = a.train(3)
    for _ in range(3):
        one = b.train(1)
    np.testing.assert_allclose(a.q.flat_params, b.q.flat_params, atol=1e-6)
    assert last == pytest.approx(one, rel=1e-5)
    assert a.updates == b.updates == 3


@pytest.mark.parametrize("double,loss", [(True, "huber"), (False, "l2")])
def test_gradient_checks_run_the_training_step_without_changing_the_agent(double, loss):
    agent = make_agent(double_dqn=double, loss=loss, dtype="float64", activation="tanh", reward_scale=0.5, huber_delta=0.5,
                       learning_starts=0, max_grad_norm=1e-3)
    feed(agent, np.random.default_rng(0), 20)
    agent.target.flat_params += 0.05
    rng = np.random.default_rng(1)
    batch = {"obs": rng.normal(size=(10, 4)), "actions": rng.integers(0, 2, 10), "rewards": rng.normal(size=10),
             "next_obs": rng.normal(size=(10, 4)), "terminated": np.eye(10, dtype=bool)[3],
             "truncated": np.zeros(10, bool)}
    before = agent.state_dict()
    (name, (net, closure)), = agent.gradient_checks(batch).items()
    assert name == "td_loss" and net is agent.q
    loss_value = closure()
    # The training loss on this batch: Q(s, a) against the (scaled) TD target of the config's kind.
    rows, nxt = np.arange(10), agent.target.predict(batch["next_obs"])
    bootstrap = nxt[rows, agent.q.predict(batch["next_obs"]).argmax(1)] if double else nxt.max(1)
    y = 0.5 * batch["rewards"] + 0.99 * (1 - batch["terminated"]) * bootstrap
    q_sa = agent.q.predict(batch["obs"])[rows, batch["actions"]]
    expected = losses.huber(q_sa, y, delta=0.5)[0] if loss == "huber" else losses.l2(q_sa, y)[0]
    assert loss_value == pytest.approx(expected, rel=1e-12)
    # The gradient is the loss's own (neither clipped to max_grad_norm nor stepped) ...
    analytic = agent.q.flat_grads.copy()
    numeric = numerical_gradient(closure, agent.q.flat_params, eps=1e-7)
    assert np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric)) < 1e-7
    assert np.linalg.norm(analytic) > 10 * agent.config.max_grad_norm       # clipping would show
    # ... and the agent is left as it was: parameters, optimizer, counters, generator.
    after = agent.state_dict()
    for key in ("q", "target"):
        assert np.array_equal(after[key]["flat_params"], before[key]["flat_params"])
    assert all(np.array_equal(after["opt"][k], before["opt"][k]) for k in before["opt"])
    assert after["counters"] == before["counters"] and after["rng"] == before["rng"]


def test_learns_cartpole_quickly(tmp_path):
    # The CartPole preset's agent on a short budget: well above the random agent's ~22 by 5,000 steps.
    cfg = cfgmod.build("dqn", "CartPole-v1")
    run = RunConfig(total_steps=5_000, num_envs=cfg.run.num_envs, eval_every=5_000, eval_episodes=5,
                    checkpoint_every=10**6, log_every=1_000, logdir=str(tmp_path))
    result = train("dqn", run, cfg.agent, console=False)
    last = [r for _, r in result.episode_returns[-10:]]
    assert result.evals[-1].mean > 60 or np.mean(last) > 60, (result.evals, last)
