"""envs: our CartPole vector env and EpisodeStatistics match Gymnasium's, env state round-trips exactly, eval
normalization is frozen."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import envs
from envs.cartpole import CartPoleVectorEnv
from envs.pendulum import PendulumVectorEnv
from envs.sync import SyncVectorEnv


def _sync(num_envs):
    return gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})


def _step_both(a_env, b_env, num_envs: int, steps: int, seed: int) -> int:
    """Step two envs with the same random actions, asserting identical outputs; returns episodes ended."""
    rng = np.random.default_rng(seed)
    ended = 0
    for _ in range(steps):
        actions = rng.integers(0, 2, size=num_envs)
        a, b = a_env.step(actions), b_env.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        assert ("episode" in a[4]) == ("episode" in b[4])
        if "episode" in b[4]:
            ended += 1
            np.testing.assert_array_equal(a[4]["_episode"], b[4]["_episode"])
            for key in ("r", "l"):
                np.testing.assert_array_equal(a[4]["episode"][key], b[4]["episode"][key])
                assert a[4]["episode"][key].dtype == b[4]["episode"][key].dtype
    return ended


@pytest.mark.parametrize("num_envs", [1, 3])
def test_episode_statistics_match_gymnasium_step_for_step(num_envs):
    ours, theirs = envs.EpisodeStatistics(_sync(num_envs)), RecordEpisodeStatistics(_sync(num_envs))
    ours.reset(seed=4)
    theirs.reset(seed=4)
    ended = 0
    for k in range(600):     # one step at a time, to compare the wrappers' counters after every step
        ended += _step_both(ours, theirs, num_envs, 1, seed=k)
        for name in ("episode_returns", "episode_lengths", "prev_dones"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    assert ended > 20 and ours.episode_count == theirs.episode_count
    assert list(ours.return_queue) == list(theirs.return_queue)
    assert list(ours.length_queue) == list(theirs.length_queue)


@pytest.mark.parametrize("num_envs", [1, 4, 16])
@pytest.mark.parametrize("sutton_barto_reward", [False, True])
def test_our_cartpole_vector_env_matches_gymnasiums_bit_for_bit(num_envs, sutton_barto_reward):
    kwargs = dict(num_envs=num_envs, max_episode_steps=30, sutton_barto_reward=sutton_barto_reward)
    ours, theirs = CartPoleVectorEnv(**kwargs), gym.envs.classic_control.cartpole.CartPoleVectorEnv(**kwargs)
    np.testing.assert_array_equal(ours.reset(seed=5)[0], theirs.reset(seed=5)[0])
    rng, terminated, truncated = np.random.default_rng(1), 0, 0
    for k in range(3000):
        # runs of one action end episodes (terminated); alternating actions balance to the time limit
        actions = rng.integers(0, 2, size=num_envs) if k % 200 < 100 else np.full(num_envs, k % 2)
        a, b = ours.step(actions), theirs.step(actions)
        for x, y in zip(a[:4], b[:4]):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(ours.state, theirs.state)
        terminated += int(b[2].sum())
        truncated += int(b[3].sum())
    assert terminated > 50 and truncated > 5    # both kinds of reset were compared


def _assert_same_step(a, b):
    for x, y in zip(a[:4], b[:4]):
        assert type(x) is type(y) and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert list(a[4]) == list(b[4])
    for key in b[4]:
        np.testing.assert_array_equal(a[4][key], b[4][key])


# FrozenLake: Discrete observations (one-hot through FlattenObservation, and raw: our step's Discrete
# path), and an info dict on every step and reset (the _add_info path).
@pytest.mark.parametrize("env_id, num_envs, raw", [("CartPole-v1", 1, False), ("CartPole-v1", 3, False),
                                                   ("Acrobot-v1", 2, False), ("MountainCar-v0", 1, False),
                                                   ("FrozenLake-v1", 3, False), ("FrozenLake-v1", 3, True)])
def test_our_sync_vector_env_matches_gymnasiums_step_for_step(env_id, num_envs, raw):
    vector_kwargs = {"autoreset_mode": AutoresetMode.NEXT_STEP}
    wrappers = None if raw or env_id != "FrozenLake-v1" else [gym.wrappers.FlattenObservation]
    theirs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", vector_kwargs=vector_kwargs,
                          wrappers=wrappers)
    if raw:
        ours = SyncVectorEnv([lambda: gym.make(env_id)] * num_envs, **vector_kwargs)
        assert isinstance(ours.single_observation_space, gym.spaces.Discrete)
    else:
        ours = envs.make_vec_env(env_id, num_envs, seed=0, vectorization_mode="sync").unwrapped
        assert ours.spec == theirs.spec
    assert type(ours) is SyncVectorEnv
    reset_a, reset_b = ours.reset(seed=3), theirs.reset(seed=3)
    np.testing.assert_array_equal(reset_a[0], reset_b[0])
    rng, ends = np.random.default_rng(2), 0
    n_actions = int(ours.single_action_space.n)
    for _ in range(1500):
        actions = rng.integers(0, n_actions, size=num_envs)
        a, b = ours.step(actions), theirs.step(actions)
        _assert_same_step(a, b)
        assert a[0] is not ours._observations      # a fresh array, as Gymnasium's deepcopy
        ends += int(np.count_nonzero(b[2] | b[3]))
    assert ends >= 3                            # resets (the NEXT_STEP rows) were compared too


def test_our_sync_vector_env_leaves_other_action_batches_to_gymnasium():
    ours = envs.make_vec_env("CartPole-v1", 2, seed=0, vectorization_mode="sync").unwrapped
    theirs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                          vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})
    ours.reset(seed=1)
    theirs.reset(seed=1)
    _assert_same_step(ours.step([0, 1]), theirs.step([0, 1]))     # a list: Gymnasium's step
    for bad in (np.zeros(3, np.int64), np.zeros(1, np.int64)):      # the wrong number of actions
        with pytest.raises(ValueError) as mine:
            ours.step(bad)
        with pytest.raises(ValueError) as gyms:
            theirs.step(bad)
        assert str(mine.value) == str(gyms.value)


@pytest.mark.parametrize("action", [[0, 2], [-1, 0], [0.0, 1.0], [0, 1, 1], [[0, 1]]])
def test_our_cartpole_vector_env_refuses_actions_outside_0_1(action):
    env = CartPoleVectorEnv(num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid: 2 actions in {0, 1} expected"):
        env.step(np.array(action))


@pytest.mark.parametrize("env_id, max_steps", [("CartPole-v1", 500), ("CartPole-v0", 200)])
def test_make_vec_env_builds_our_cartpole_vector_env(env_id, max_steps):
    env = envs.make_vec_env(env_id, 4, seed=0)
    assert isinstance(env.unwrapped, CartPoleVectorEnv) and env.unwrapped.max_episode_steps == max_steps


def test_make_vec_env_uses_it_and_its_state_round_trips():
    env = envs.make_vec_env("CartPole-v1", 2, seed=0)
    assert isinstance(env, envs.EpisodeStatistics)
    env.reset(seed=0)
    for _ in range(30):
        env.step(np.zeros(2, np.int64))
    state = envs.env_state(env)
    assert state["stats/episode_count"] == env.episode_count > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_our_pendulum_vector_env_steps_as_gymnasiums_pendulum_bit_for_bit(dtype):
    # From each sub-env's state, Gymnasium's PendulumEnv takes the same step: observation, reward, state.
    vec, rng = PendulumVectorEnv(num_envs=5), np.random.default_rng(0)
    vec.reset(seed=3)
    ref = [PendulumEnv() for _ in range(5)]
    compared = 0
    for _ in range(1_000):
        for i, env in enumerate(ref):
            env.state = vec.state[:, i].copy()
        actions = (rng.normal(size=(5, 1)) * 3).astype(dtype)        # also outside [-2, 2]: clipped
        resets = vec.prev_done.copy()
        obs, rewards, term, trunc, _ = vec.step(actions)
        for i, env in enumerate(ref):
            ref_obs, ref_reward, _, _, _ = env.step(actions[i])
            if not resets[i]:
                assert np.array_equal(ref_obs, obs[i]) and ref_reward == rewards[i]
                assert np.array_equal(env.state, vec.state[:, i])
                compared += 1
    assert compared > 4_900 and obs.dtype == np.float32 and not term.any()


def test_our_pendulum_vector_env_truncates_at_the_time_limit_and_resets_on_the_next_step():
    vec = PendulumVectorEnv(num_envs=3, max_episode_steps=200)
    vec.reset(seed=0)
    torque = np.zeros((3, 1), np.float32)
    for t in range(199):
        _, _, _, trunc, _ = vec.step(torque)
        assert not trunc.any()
    last_obs, _, _, trunc, _ = vec.step(torque)
    assert trunc.all()
    obs, rewards, term, trunc, _ = vec.step(torque)          # NEXT_STEP: the reset step
    assert not (term | trunc).any() and np.all(rewards == 0) and not np.array_equal(obs, last_obs)
    assert np.all(vec.steps == 0) and np.all(np.abs(vec.state) <= [[np.pi], [1.0]])
    with pytest.raises(ValueError, match="torques expected"):
        vec.step(np.zeros(3, np.float32))


def test_make_vec_env_builds_our_pendulum_vector_env_from_4_envs_and_its_state_round_trips():
    assert isinstance(envs.make_vec_env("Pendulum-v1", 2, seed=0).unwrapped, gym.vector.SyncVectorEnv)
    original = envs.make_vec_env("Pendulum-v1", 4, seed=0)
    assert isinstance(original.unwrapped, PendulumVectorEnv) and original.unwrapped.max_episode_steps == 200
    rng = np.random.default_rng(0)
    original.reset(seed=7)
    for _ in range(200):
        original.step(rng.uniform(-2, 2, size=(4, 1)).astype(np.float32))
    state = envs.env_state(original)
    assert bool(state["exact"])
    restored = envs.make_vec_env("Pendulum-v1", 4, seed=0)
    restored.reset(seed=999)
    assert envs.load_env_state(restored, state)
    for _ in range(250):
        action = rng.uniform(-2, 2, size=(4, 1)).astype(np.float32)
        for a, b in zip(original.step(action)[:4], restored.step(action)[:4]):
            np.testing.assert_array_equal(a, b)


EPS = 1e-8  # NormalizeObservation's default epsilon


def _run_until_an_episode_ends(env, rng, min_steps=60):
    """Random steps until past ``min_steps`` and some sub-env just ended, so a reset is pending."""
    n = env.num_envs
    for t in range(10_000):
        _, _, term, trunc, _ = env.step(rng.integers(0, 2, size=n))
        if t >= min_steps and np.any(term | trunc):
            return
    raise AssertionError("no episode ended")


def _stats_counters(env):
    stats = env
    while not isinstance(stats, envs.EpisodeStatistics):
        stats = stats.env
    return (stats.episode_returns.copy(), stats.episode_lengths.copy(), stats.prev_dones.copy(),
            stats.episode_count)


@pytest.mark.parametrize("num_envs, vector_class", [(4, "CartPoleVectorEnv"), (1, "SyncVectorEnv")])
@pytest.mark.parametrize("normalize_obs", [False, True])
def test_env_state_round_trip_continues_identically(num_envs, vector_class, normalize_obs):
    def make():
        return envs.make_vec_env("CartPole-v1", num_envs, seed=0, normalize_obs=normalize_obs)

    original = make()
    assert type(original.unwrapped).__name__ == vector_class
    original.reset(seed=7)
    _run_until_an_episode_ends(original, np.random.default_rng(0))
    state = envs.env_state(original)
    assert bool(state["exact"])

    restored = make()
    restored.reset(seed=999)  # a different start, entirely overwritten by the load
    assert envs.load_env_state(restored, state)
    for x, y in zip(_stats_counters(original), _stats_counters(restored)):
        np.testing.assert_array_equal(x, y)

    assert _step_both(original, restored, num_envs, 300, seed=1) > 0
    for x, y in zip(_stats_counters(original), _stats_counters(restored)):
        np.testing.assert_array_equal(x, y)
    after_a, after_b = envs.env_state(original), envs.env_state(restored)
    assert list(after_a) == list(after_b)
    for key in after_a:
        np.testing.assert_array_equal(after_a[key], after_b[key])


def _trained_normalized_state():
    train = envs.make_vec_env("CartPole-v1", 4, seed=0, normalize_obs=True)
    train.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        train.step(rng.integers(0, 2, size=4))
    return train, envs.env_state(train)


@pytest.mark.parametrize("vectorization_mode", ["auto", "sync"])
def test_make_eval_env_from_state_normalizes_with_the_saved_stats_and_keeps_them(vectorization_mode):
    _, state = _trained_normalized_state()
    mean, var, count = state["norm/mean"], state["norm/var"], float(state["norm/count"])
    assert not np.allclose(var, 1.0)  # real statistics, not the initial ones

    env = envs.make_eval_env_from_state("CartPole-v1", 5, True, state, vectorization_mode=vectorization_mode)
    raw = envs.make_eval_env_from_state("CartPole-v1", 5, False, state, vectorization_mode=vectorization_mode)
    assert envs.obs_normalizer(raw) is None
    obs, _ = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    rng = np.random.default_rng(2)
    for _ in range(100):
        np.testing.assert_allclose(obs, (raw_obs - mean) / np.sqrt(var + EPS), rtol=1e-6, atol=1e-6)
        actions = rng.integers(0, 2, size=5)
        obs, raw_obs = env.step(actions)[0], raw.step(actions)[0]
    after = envs.env_state(env)
    np.testing.assert_array_equal(after["norm/mean"], mean)
    np.testing.assert_array_equal(after["norm/var"], var)
    assert float(after["norm/count"]) == count


def test_make_eval_env_from_state_without_saved_stats_leaves_the_normalizer_running():
    env = envs.make_eval_env_from_state("CartPole-v1", 2, True, {})
    assert envs.obs_normalizer(env).update_running_mean


def test_sync_normalizer_copies_and_freezes():
    train, _ = _trained_normalized_state()
    src = envs.obs_normalizer(train)
    eval_env = envs.make_vec_env("CartPole-v1", 3, seed=0, normalize_obs=True)
    envs.sync_normalizer(eval_env, train)
    dst = envs.obs_normalizer(eval_env)
    assert not dst.update_running_mean and src.update_running_mean
    np.testing.assert_array_equal(dst.obs_rms.mean, src.obs_rms.mean)
    np.testing.assert_array_equal(dst.obs_rms.var, src.obs_rms.var)
    assert dst.obs_rms.count == src.obs_rms.count
    mean, var = src.obs_rms.mean.copy(), src.obs_rms.var.copy()

    train.step(np.zeros(4, np.int64))  # training keeps updating its own statistics...
    assert not np.array_equal(src.obs_rms.mean, mean)
    eval_env.reset(seed=1)
    for _ in range(20):
        eval_env.step(np.zeros(3, np.int64))
    np.testing.assert_array_equal(dst.obs_rms.mean, mean)  # ...which are copies, frozen here
    np.testing.assert_array_equal(dst.obs_rms.var, var)


def test_make_eval_env_matches_the_training_normalization():
    train, _ = _trained_normalized_state()
    assert envs.obs_normalizer(envs.make_eval_env("CartPole-v1", 2)) is None
    norm = envs.obs_normalizer(envs.make_eval_env("CartPole-v1", 2, train))
    np.testing.assert_array_equal(norm.obs_rms.mean, envs.obs_normalizer(train).obs_rms.mean)
    assert not norm.update_running_mean
