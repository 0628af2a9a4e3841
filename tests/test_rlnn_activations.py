"""rlnn.activations: values, derivatives (finite differences), stability, registry."""
import warnings

import numpy as np
import pytest

from rlnn import activations, gradcheck

# Points away from the kinks of relu / leaky_relu / elu at 0.
X = np.array([-3.0, -1.2, -0.4, -0.05, 0.07, 0.5, 1.1, 2.9])

REFERENCE = {
    "identity": lambda x: x,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "softplus": lambda x: np.log(1 + np.exp(x)),
}


def test_names_cover_the_registry():
    assert set(activations.NAMES) == set(REFERENCE)
    for name in activations.NAMES:
        assert activations.get(name).name == name


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_values_match_the_textbook_formula(name):
    act = activations.get(name)
    np.testing.assert_allclose(act(X), REFERENCE[name](X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_derivative_matches_finite_differences(name):
    act = activations.get(name)
    x = X.copy()
    v = np.random.default_rng(0).standard_normal(x.shape)   # random projection of the Jacobian
    err = gradcheck(lambda: float(np.sum(v * act(x))), x, v * act.df(x))
    assert err < 1e-7


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_derivative_from_output_equals_derivative_from_input(name):
    act = activations.get(name)
    np.testing.assert_allclose(act.df_from_output(act(X)), act.df(X), rtol=1e-12)
    dy = np.linspace(-1, 1, X.size)
    out = np.empty_like(X)
    np.testing.assert_allclose(act.backprop(dy, act(X), out=out), dy * act.df(X), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_out_may_alias_the_input(name):
    act = activations.get(name)
    x = X.copy()
    result = act.f(x, out=x)
    assert result is x
    np.testing.assert_allclose(x, REFERENCE[name](X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_float32_stays_float32(name):
    act = activations.get(name)
    x = X.astype(np.float32)
    assert act(x).dtype == np.float32
    assert act.df(x).dtype == np.float32
    out = np.empty_like(x)
    assert act.backprop(np.ones_like(x), act(x), out=out).dtype == np.float32


def test_sigmoid_derivative_at_one_is_the_lecture_value():
    assert activations.sigmoid.df(1.0) == pytest.approx(0.19661193324148185, rel=1e-15)
    assert activations.get("sigmoid").df(np.array([1.0]))[0] == pytest.approx(0.19661193324148185)


def test_relu_family_derivatives_at_zero_follow_torch():
    zero = np.zeros(1)
    assert activations.relu.df(zero)[0] == 0.0
    assert activations.leaky_relu.df(zero)[0] == 0.01
    assert activations.elu.df(zero)[0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_extreme_inputs_give_finite_values_without_warnings(name, dtype):
    act = activations.get(name)
    x = np.array([-1000.0, -710.0, -50.0, 0.0, 50.0, 710.0, 1000.0], dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y = act(x)
        d = act.df(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))


def test_sigmoid_saturates_exactly_and_symmetrically():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = activations.sigmoid(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    # tiny outputs keep full relative precision (no 1 - (1 - e) cancellation)
    assert y[1] == pytest.approx(np.exp(-30.0) / (1 + np.exp(-30.0)), rel=1e-14)


def test_softplus_is_accurate_in_both_tails():
    y = activations.softplus(np.array([-40.0, 40.0, 800.0]))
    assert y[0] == pytest.approx(np.exp(-40.0), rel=1e-14)
    assert y[1] == pytest.approx(40.0, rel=1e-15)
    assert y[2] == 800.0


def test_softmax_and_log_softmax_are_stable_at_large_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0], [3.0, 1.0, 0.2]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        p = activations.softmax(z)
        logp = activations.log_softmax(z)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(logp))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(logp[0], [0.0, -1000.0, -2000.0])
    e = np.exp(1.0)
    np.testing.assert_allclose(p[1], [1 / (2 + e), 1 / (2 + e), e / (2 + e)], rtol=1e-14)
    direct = np.exp(z[2]) / np.exp(z[2]).sum()
    np.testing.assert_allclose(p[2], direct, rtol=1e-14)
    np.testing.assert_allclose(logp[2], np.log(direct), rtol=1e-14)


def test_softmax_along_another_axis():
    z = np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(activations.softmax(z, axis=0), activations.softmax(z.T).T)


def test_unknown_activation_lists_the_allowed_names():
    with pytest.raises(ValueError) as info:
        activations.get("swish")
    message = str(info.value)
    assert "swish" in message
    for name in activations.NAMES:
        assert name in message
