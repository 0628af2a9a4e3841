"""envs.EpisodeStatistics: the same statistics and info as Gymnasium's RecordEpisodeStatistics."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import envs


def _sync(num_envs):
    return gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})


@pytest.mark.parametrize("num_envs", [1, 3])
def test_episode_statistics_match_gymnasium_step_for_step(num_envs):
    ours, theirs = envs.EpisodeStatistics(_sync(num_envs)), RecordEpisodeStatistics(_sync(num_envs))
    ours.reset(seed=4)
    theirs.reset(seed=4)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(600):
        actions = rng.integers(0, 2, size=num_envs)
        a, b = ours.step(actions), theirs.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        assert ("episode" in a[4]) == ("episode" in b[4])
        if "episode" in b[4]:
            ended += 1
            np.testing.assert_array_equal(a[4]["_episode"], b[4]["_episode"])
            for key in ("r", "l"):
                np.testing.assert_array_equal(a[4]["episode"][key], b[4]["episode"][key])
                assert a[4]["episode"][key].dtype == b[4]["episode"][key].dtype
        for name in ("episode_returns", "episode_lengths", "prev_dones"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    assert ended > 20 and ours.episode_count == theirs.episode_count
    assert list(ours.return_queue) == list(theirs.return_queue)
    assert list(ours.length_queue) == list(theirs.length_queue)


def test_make_vec_env_uses_it_and_its_state_round_trips():
    env = envs.make_vec_env("CartPole-v1", 2, seed=0)
    assert any(isinstance(layer, envs.EpisodeStatistics) for layer in envs._layers(env))
    env.reset(seed=0)
    for _ in range(30):
        env.step(np.zeros(2, np.int64))
    state = envs.env_state(env)
    assert state["stats/episode_count"] == env.episode_count > 0
