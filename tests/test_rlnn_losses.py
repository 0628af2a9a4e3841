"""rlnn.losses: PyTorch definitions, finite-difference gradients, weights, errors."""
import warnings

import numpy as np
import pytest

from rlnn import activations, gradcheck, losses

RNG = np.random.default_rng(42)
PRED = RNG.standard_normal((6, 3)) * 2
TARGET = RNG.standard_normal((6, 3)) * 2
WEIGHTS = np.array([1.5, -2.0, 0.3, 0.0, -0.7, 1.1])   # advantages: any sign


def _huber_elementwise(r, d):
    return np.array([0.5 * v * v if abs(v) <= d else d * (abs(v) - 0.5 * d) for v in r.ravel()]
                    ).reshape(r.shape)


# The torch definitions, written out elementwise (mean over all elements).
DIRECT = {
    "l1": lambda r: np.abs(r),
    "l2": lambda r: r ** 2,
    "huber": lambda r: _huber_elementwise(r, 1.0),
    "pseudo_huber": lambda r: np.sqrt(1 + r ** 2) - 1,
}


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_value_matches_direct_definition(name):
    value, grad = losses.get(name)(PRED, TARGET)
    assert isinstance(value, float)
    assert value == pytest.approx(np.mean(DIRECT[name](PRED - TARGET)), rel=1e-13)
    assert grad.shape == PRED.shape


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_weighted_value_divides_by_element_count_not_weight_sum(name):
    value, _ = losses.get(name)(PRED, TARGET, weights=WEIGHTS)
    expected = np.sum(WEIGHTS[:, None] * DIRECT[name](PRED - TARGET)) / PRED.size
    assert value == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("weights", [None, WEIGHTS], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", sorted(DIRECT))
def test_gradient_matches_finite_differences(name, weights):
    pred = PRED.copy()
    fn = losses.get(name)
    assert gradcheck(lambda: fn(pred, TARGET, weights=weights), pred) < 1e-7


@pytest.mark.parametrize("delta", [0.3, 2.5])
def test_huber_and_pseudo_huber_with_other_deltas(delta):
    pred = PRED.copy()
    r = PRED - TARGET
    value, _ = losses.huber(pred, TARGET, delta=delta)
    assert value == pytest.approx(np.mean(_huber_elementwise(r, delta)), rel=1e-13)
    value, _ = losses.pseudo_huber(pred, TARGET, delta=delta)
    assert value == pytest.approx(np.mean(delta ** 2 * (np.sqrt(1 + (r / delta) ** 2) - 1)))
    for fn in (losses.huber, losses.pseudo_huber):
        assert gradcheck(lambda: fn(pred, TARGET, delta=delta, weights=WEIGHTS), pred) < 1e-7


def test_huber_gradient_is_capped_at_delta_and_l2_is_not():
    pred = np.array([0.5, 100.0, -100.0])
    target = np.zeros(3)
    _, g_huber = losses.huber(pred, target, delta=1.0)
    _, g_l2 = losses.l2(pred, target)
    np.testing.assert_allclose(g_huber * 3, [0.5, 1.0, -1.0])
    np.testing.assert_allclose(g_l2 * 3, [1.0, 200.0, -200.0])


def test_l1_gradient_at_zero_residual_is_zero():
    _, grad = losses.l1(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0]))
    np.testing.assert_array_equal(grad, [0.0, 1 / 3, -1 / 3])


def test_one_dimensional_predictions_work():
    pred, target = np.array([1.0, 2.0, 4.0]), np.array([0.0, 2.0, 1.0])
    value, grad = losses.l2(pred, target, weights=np.array([1.0, 1.0, -1.0]))
    assert value == pytest.approx((1 + 0 - 9) / 3)
    np.testing.assert_allclose(grad, [2 / 3, 0.0, -6 / 3])


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_float32_in_float32_out(name):
    _, grad = losses.get(name)(PRED.astype(np.float32), TARGET, weights=WEIGHTS)
    assert grad.dtype == np.float32


def test_shape_mismatch_is_an_error_not_a_broadcast():
    with pytest.raises(ValueError, match=r"\(64, 1\).*\(64,\)"):
        losses.l2(np.zeros((64, 1)), np.zeros(64))
    with pytest.raises(ValueError, match="weights shape"):
        losses.huber(np.zeros((4, 2)), np.zeros((4, 2)), weights=np.ones(3))
    with pytest.raises(ValueError, match="delta"):
        losses.huber(np.zeros(2), np.zeros(2), delta=0.0)


def test_unknown_loss_lists_the_allowed_names():
    with pytest.raises(ValueError) as info:
        losses.get("mse_typo")
    assert "mse_typo" in str(info.value)
    for name in ("l1", "l2", "huber", "pseudo_huber"):
        assert name in str(info.value)


# ---------------------------------------------------------------- cross entropy
LOGITS = RNG.standard_normal((5, 4)) * 3
LABELS = np.array([0, 3, 1, 1, 2])


def test_cross_entropy_equals_direct_computation():
    value, grad = losses.softmax_cross_entropy(LOGITS, LABELS)
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(5), LABELS])), rel=1e-13)
    onehot = np.eye(4)[LABELS]
    np.testing.assert_allclose(grad, (p - onehot) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradient_matches_finite_differences():
    z = LOGITS.copy()
    assert gradcheck(lambda: losses.softmax_cross_entropy(z, LABELS), z) < 1e-7
    assert gradcheck(lambda: losses.softmax_cross_entropy(z, LABELS, weights=WEIGHTS[:5]), z) < 1e-7


def test_reinforce_weights_scale_by_advantage_with_sign():
    adv = np.array([2.0, -1.0, 0.0, 0.5, -3.0])
    value, grad = losses.softmax_cross_entropy(LOGITS, LABELS, weights=adv)
    logp = activations.log_softmax(LOGITS)[np.arange(5), LABELS]
    assert value == pytest.approx(-np.mean(adv * logp), rel=1e-13)
    p = activations.softmax(LOGITS)
    # descent direction -grad = (onehot - p) * A / N
    np.testing.assert_allclose(-grad, (np.eye(4)[LABELS] - p) * adv[:, None] / 5, atol=1e-15)
    # positive advantage: a step along -grad raises the taken action's logit most
    assert np.argmax(-grad[0]) == LABELS[0]
    assert np.argmin(-grad[1]) == LABELS[1]


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        value, grad = losses.softmax_cross_entropy(z, np.array([1, 2]))
    # sample 0: -log p = 2000; sample 1: -log p = log(1 + e) (softmax over 1000, 999)
    assert value == pytest.approx((2000.0 + np.log1p(np.e)) / 2, rel=1e-13)
    assert np.all(np.isfinite(grad))


def test_cross_entropy_label_errors():
    with pytest.raises(ValueError, match="labels"):
        losses.softmax_cross_entropy(LOGITS, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="labels"):
        losses.softmax_cross_entropy(LOGITS, LABELS.astype(float))
    with pytest.raises(ValueError, match="labels"):
        losses.softmax_cross_entropy(LOGITS, LABELS[:3])
    with pytest.raises(ValueError, match="logits"):
        losses.softmax_cross_entropy(LOGITS[0], LABELS)


def test_entropy_value_and_gradient():
    value, _ = losses.entropy(LOGITS)
    p = activations.softmax(LOGITS)
    assert value == pytest.approx(np.mean(-np.sum(p * np.log(p), axis=1)), rel=1e-13)
    z = LOGITS.copy()
    assert gradcheck(lambda: losses.entropy(z), z) < 1e-7
    uniform, grad = losses.entropy(np.zeros((2, 4)))
    assert uniform == pytest.approx(np.log(4))
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)     # the maximum: flat


def test_weighted_entropy_value_and_gradient():
    w = np.linspace(-1.0, 2.0, len(LOGITS))
    value, _ = losses.entropy(LOGITS, weights=w)
    p = activations.softmax(LOGITS)
    assert value == pytest.approx(np.mean(w * -np.sum(p * np.log(p), axis=1)), rel=1e-12)
    z = LOGITS.copy()
    assert gradcheck(lambda: losses.entropy(z, weights=w), z) < 1e-7
    with pytest.raises(ValueError, match="weights shape"):
        losses.entropy(LOGITS, weights=w[:-1])
