"""rlnn.gradcheck itself: it must catch wrong gradients and leave params untouched."""
import numpy as np
import pytest

import rlnn
from rlnn import gradcheck
from rlnn.gradcheck import numerical_gradient, relative_error


def test_exported_as_a_callable():
    assert callable(rlnn.gradcheck) and rlnn.gradcheck is gradcheck


def test_numerical_gradient_of_a_quadratic():
    x = np.array([1.0, -2.0, 0.5])
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    g = numerical_gradient(lambda: 0.5 * x @ a @ x, x)
    np.testing.assert_allclose(g, a @ x, rtol=1e-8)


def test_correct_gradient_passes_and_wrong_gradient_fails():
    x = np.array([0.3, -1.2, 2.0])

    def f():
        return float(np.sum(np.sin(x) * x))

    right = np.cos(x) * x + np.sin(x)
    assert gradcheck(f, x, right) < 1e-8
    wrong = right.copy()
    wrong[1] *= 1.01                     # a 1 % error in one component is caught
    assert gradcheck(f, x, wrong) > 1e-3
    assert gradcheck(f, x, np.cos(x) * x) > 0.1


def test_value_and_gradient_protocol():
    x = np.array([1.0, 2.0])
    assert gradcheck(lambda: (float(x @ x), 2 * x), x) < 1e-8
    assert gradcheck(lambda: (float(x @ x), x), x) > 0.1
    with pytest.raises(ValueError, match=r"\(value, grad\)"):
        gradcheck(lambda: 1.0, x)


def test_params_are_restored_exactly():
    x = np.array([0.1, 0.2, 0.7])
    before = x.copy()
    gradcheck(lambda: float(np.prod(x)), x, np.zeros(3))
    np.testing.assert_array_equal(x, before)


def test_relative_error_definition():
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert relative_error(np.array([2.0]), np.array([1.0])) == pytest.approx(1 / 3)
    assert relative_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)  # floor


def test_rejects_float32_and_shape_mismatch():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda: 0.0, np.zeros(2, np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        gradcheck(lambda: 0.0, np.zeros(2), np.zeros(3))
