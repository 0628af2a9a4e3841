"""Reward-to-go and GAE over vector rollouts with episode boundaries, reset rows and truncation."""

from __future__ import annotations

import numpy as np
import pytest

from agents.returns import discount_cumsum, episode_complete, gae, reward_to_go

F, T_ = False, True


def test_discount_cumsum_textbook():
    x = np.array([[1.0], [2.0], [3.0]])
    assert np.allclose(discount_cumsum(x, 0.5), [[1 + 0.5 * 2 + 0.25 * 3], [2 + 0.5 * 3], [3]])


def _batch():
    """Two sub-envs, 6 steps, gamma = 0.5, reward 1 on every valid step.

    env 0: episode A terminates at t=1; t=2 is the reset row (invalid); episode B runs t=3..5 and is
           still running at the end of the rollout.
    env 1: episode C is truncated (time limit) at t=2; t=3 is the reset row; episode D runs t=4..5,
           and t=5 is both terminated and truncated (terminated wins: no bootstrap).
    """
    valid = np.array([[T_, T_], [T_, T_], [F, T_], [T_, F], [T_, T_], [T_, T_]])
    rewards = valid.astype(float)
    term = np.zeros((6, 2), bool)
    trunc = np.zeros((6, 2), bool)
    term[1, 0] = True
    trunc[2, 1] = True
    term[5, 1] = trunc[5, 1] = True
    next_values = np.full((6, 2), 100.0)   # V(next_obs): only bootstrap rows may use it
    next_values[2, 1] = 8.0                # V(final obs of the truncated episode C)
    next_values[5, 0] = 10.0               # V(next_obs) after the rollout's last step, env 0
    return rewards, term, trunc, valid, next_values


def test_reward_to_go_respects_boundaries_reset_rows_and_truncation_bootstrap():
    rewards, term, trunc, valid, nv = _batch()
    g = reward_to_go(rewards, term, trunc, 0.5, valid=valid, next_values=nv)
    # env 0: A = [1.5, 1]; reset row 0; B bootstrapped with V = 10 at its last row: 1 + 0.5 * 10 = 6
    assert np.allclose(g[:, 0], [1.5, 1.0, 0.0, 1 + 0.5 * (1 + 0.5 * 6), 1 + 0.5 * 6, 6.0])
    # env 1: C truncated at t=2 with V(final obs) = 8 -> 5, 3.5, 2.75; reset row 0; D terminated -> 1.5, 1
    assert np.allclose(g[:, 1], [2.75, 3.5, 5.0, 0.0, 1.5, 1.0])


def test_reward_to_go_without_critic_treats_truncation_as_end_and_does_not_bootstrap():
    rewards, term, trunc, valid, _ = _batch()
    g = reward_to_go(rewards, term, trunc, 0.5, valid=valid)
    assert np.allclose(g[:, 0], [1.5, 1.0, 0.0, 1.75, 1.5, 1.0])
    assert np.allclose(g[:, 1], [1.75, 1.5, 1.0, 0.0, 1.5, 1.0])


def test_gae_hand_computed():
    # One env, gamma 0.9, lambda 0.8, no episode end inside the rollout.
    r = np.array([[1.0], [1.0], [1.0]])
    v = np.array([[0.5], [0.4], [0.3]])
    nv = np.array([[0.4], [0.3], [0.2]])
    no = np.zeros((3, 1), bool)
    adv, ret = gae(r, v, nv, no, no, 0.9, 0.8)
    d2, d1, d0 = 1 + 0.9 * 0.2 - 0.3, 1 + 0.9 * 0.3 - 0.4, 1 + 0.9 * 0.4 - 0.5   # 0.88, 0.87, 0.86
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    assert np.allclose(adv[:, 0], [a0, a1, a2]) and np.isclose(a0, 1.942592)
    assert np.allclose(ret, adv + v)

    # Terminated at t=1 (no bootstrap, no flow from t=2), t=2 is a reset row.
    term = np.array([[False], [True], [False]])
    valid = np.array([[True], [True], [False]])
    adv, ret = gae(r * valid, v, nv, term, no, 0.9, 0.8, valid)
    assert np.allclose(adv[:, 0], [d0 + 0.72 * (1 - 0.4), 1 - 0.4, 0.0])
    assert ret[2, 0] == 0.0

    # Truncated at t=1: bootstraps with V(final obs) = nv[1], still no flow from t=2.
    adv, _ = gae(r * valid, v, nv, no, term, 0.9, 0.8, valid)
    assert np.allclose(adv[:, 0], [d0 + 0.72 * d1, d1, 0.0])


def test_gae_lambda_one_is_bootstrapped_reward_to_go_minus_baseline():
    rng = np.random.default_rng(0)
    rewards, term, trunc, valid, nv = _batch()
    v = rng.normal(size=rewards.shape)
    # consistent critic: V(next_obs_t) = V(obs_{t+1}) unless the episode ended at t
    nv2 = nv.copy()
    cont = ~(term | trunc)
    nv2[:-1][cont[:-1]] = v[1:][cont[:-1]]
    adv, ret = gae(rewards, v, nv2, term, trunc, 0.5, 1.0, valid)
    g = reward_to_go(rewards, term, trunc, 0.5, valid=valid, next_values=nv2)
    assert np.allclose(adv, (g - v) * valid)
    assert np.allclose(ret, g * valid)
    # lambda = 0: one-step TD errors
    adv0, _ = gae(rewards, v, nv2, term, trunc, 0.5, 0.0, valid)
    assert np.allclose(adv0, (rewards + 0.5 * ~term * nv2 - v) * valid)


def test_episode_complete_marks_rows_of_finished_episodes():
    _, term, trunc, valid, _ = _batch()
    c = episode_complete(term, trunc)
    assert c[:, 0].tolist() == [True, True, False, False, False, False]
    assert c[:, 1].tolist() == [True] * 6
    c = episode_complete(term, trunc, valid=valid, lengths=np.array([6, 4]))
    assert c[:, 1].tolist() == [True, True, True, False, False, False]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="time-major"):
        reward_to_go(np.ones(3), np.zeros(3), np.zeros(3), 0.9)
    with pytest.raises(ValueError, match="shape"):
        gae(np.ones((3, 2)), np.ones((3, 1)), np.ones((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), 0.9, 0.9)
