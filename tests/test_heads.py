"""Policy heads: log-probability, entropy, the weighted negative log-likelihood and their gradients (with
respect to the network outputs and the head's own log-std) against central differences in float64, and
what sampling, the greedy action and the Box's clip give."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base import EnvInfo
from agents.heads import Categorical, DiagonalGaussian, policy_head
from rlnn.gradcheck import numerical_gradient, relative_error

B = 7


def categorical_case(seed=0):
    rng = np.random.default_rng(seed)
    head = Categorical(4, np.float64)
    return head, rng.normal(size=(B, 4)) * 2, rng.integers(0, 4, size=B), rng


def gaussian_case(seed=0):
    rng = np.random.default_rng(seed)
    head = DiagonalGaussian([-2.0, -1.0, 0.0], [2.0, 1.0, 5.0], dtype=np.float64)
    head.flat_params[...] = rng.normal(size=3) * 0.5         # log_std away from 0: sigma != 1
    return head, rng.normal(size=(B, 3)), rng.normal(size=(B, 3)) * 1.5, rng


CASES = {"categorical": categorical_case, "gaussian": gaussian_case}


def terms(head, out, actions, weights):
    """The three losses a learner builds from a head, each as (value, (d/d out, d/d head params)) ."""
    def weighted_log_prob():
        logp = head.log_prob(out, actions)
        return float(weights @ logp), head.log_prob_backward(weights.copy())

    return {"log_prob": weighted_log_prob,
            "nll": lambda: head.nll(out, actions, weights),
            "entropy": lambda: head.entropy(out)}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("term", ["log_prob", "nll", "entropy"])
def test_gradients_match_finite_differences(case, term):
    head, out, actions, rng = CASES[case]()
    weights = rng.normal(size=B)
    f = terms(head, out, actions, weights)[term]
    _, (dout, dparams) = f()
    dout, dparams = np.array(dout, np.float64), np.array(dparams, np.float64)
    value = lambda: f()[0]
    assert dout.shape == out.shape and dparams.shape == head.flat_params.shape
    assert relative_error(dout, numerical_gradient(value, out)) < 1e-6
    if head.flat_params.size:
        assert relative_error(dparams, numerical_gradient(value, head.flat_params)) < 1e-6
    if case == "gaussian" and term != "entropy":
        assert np.abs(dparams).max() > 1e-3          # the log-std gradient is really exercised


def test_categorical_log_prob_and_entropy_are_the_softmax_ones():
    head, logits, actions, _ = categorical_case()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(head.log_prob(logits, actions), np.log(p[np.arange(B), actions]), atol=1e-12)
    assert head.entropy(logits)[0] == pytest.approx(-(p * np.log(p)).sum(1).mean(), rel=1e-12)


def test_gaussian_log_prob_and_entropy_are_the_normal_ones():
    head, mean, actions, _ = gaussian_case()
    std = np.exp(head.log_std)
    density = np.exp(-0.5 * ((actions - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    assert np.allclose(head.log_prob(mean, actions), np.log(density).sum(1), atol=1e-12)
    assert head.entropy(mean)[0] == pytest.approx(np.sum(0.5 * np.log(2 * math.pi * math.e * std ** 2)), rel=1e-12)


def test_gaussian_samples_have_the_mean_and_std_and_the_env_sees_them_clipped():
    head, _, _, _ = gaussian_case()
    mean = np.tile([[0.5, -0.2, 4.5]], (20_000, 1))
    draws = head.sample(mean, np.random.default_rng(1))
    assert np.allclose(draws.mean(0), mean[0], atol=0.05)
    assert np.allclose(draws.std(0), np.exp(head.log_std), rtol=0.03)
    clipped = head.env_actions(draws)
    assert np.all(clipped >= head.low) and np.all(clipped <= head.high)
    inside = (draws >= head.low) & (draws <= head.high)
    assert np.array_equal(clipped[inside], draws[inside]) and not inside.all()
    assert np.array_equal(head.env_actions(head.mode(np.array([[3.0, 0.5, -1.0]]))), [[2.0, 0.5, 0.0]])


def test_categorical_samples_follow_softmax_and_mode_is_argmax():
    head = Categorical(3)
    logits = np.log(np.array([[0.2, 0.5, 0.3]]))
    draws = head.sample(np.repeat(logits, 30_000, axis=0), np.random.default_rng(0))
    assert np.allclose(np.bincount(draws, minlength=3) / 30_000, [0.2, 0.5, 0.3], atol=0.01)
    assert head.mode(logits).tolist() == [1] and head.flat_params.size == 0


def test_policy_head_by_action_space():
    assert isinstance(policy_head(EnvInfo(4, 2, 1)), Categorical)
    head = policy_head(EnvInfo(3, 0, 1, action_dim=1, action_low=(-2.0,), action_high=(2.0,)), log_std_init=-0.5)
    assert isinstance(head, DiagonalGaussian) and head.num_outputs == 1 and head.log_std.tolist() == [-0.5]
    head.load_state_dict({"log_std": np.array([0.25])})
    assert head.state_dict()["log_std"].tolist() == [0.25]
