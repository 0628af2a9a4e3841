"""Learning sanity: the pieces together actually fit things."""
import numpy as np

from rlnn import MLP, losses, optim

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def _fit(net, opt, x, y, steps, loss=losses.l2):
    for _ in range(steps):
        net.zero_grad()
        value, dy = loss(net.forward(x), y)
        net.backward(dy)
        opt.step()
    return loss(net.forward(x), y)[0]


def test_xor_with_identity_output_and_l2():
    net = MLP([2, 8, 1], activation="tanh", seed=0)
    final = _fit(net, optim.Adam(net.flat_params, net.flat_grads, lr=0.05), XOR_X, XOR_Y, 600)
    assert final < 1e-4
    np.testing.assert_array_equal(np.round(net.predict(XOR_X)), XOR_Y)


def test_xor_with_sigmoid_output_float32():
    net = MLP([2, 8, 1], activation="tanh", output_activation="sigmoid", seed=1,
              dtype=np.float32)
    opt = optim.SGD(net.flat_params, net.flat_grads, lr=2.0, momentum=0.9)
    final = _fit(net, opt, XOR_X, XOR_Y, 1500)
    assert final < 1e-3
    assert net.flat_params.dtype == np.float32
    np.testing.assert_array_equal(net.predict(XOR_X) > 0.5, XOR_Y > 0.5)


def test_sine_fit():
    x = np.linspace(-np.pi, np.pi, 128)[:, None]
    y = np.sin(x)
    net = MLP([1, 32, 32, 1], activation="tanh", seed=0)
    final = _fit(net, optim.Adam(net.flat_params, net.flat_grads, lr=1e-2), x, y, 1500)
    assert final < 1e-3
    x_test = np.array([[-2.5], [-0.3], [1.0], [2.2]])
    np.testing.assert_allclose(net.predict(x_test), np.sin(x_test), atol=0.05)


def _fit_line_with_outliers(loss, steps=1500):
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 60)[:, None]
    y = 2 * x + 1 + 0.05 * rng.standard_normal(x.shape)
    y[[5, 20, 33, 47, 55]] += 80.0                       # a few huge outliers
    line = MLP([1, 1], seed=0)                            # y = w x + b
    opt = optim.SGD(line.flat_params, line.flat_grads, lr=0.5)
    _fit(line, opt, x, y, steps, loss)
    return line.params[0][0, 0], line.params[1][0]


def test_huber_and_pseudo_huber_resist_outliers_where_l2_does_not():
    slope, intercept = _fit_line_with_outliers(losses.l2)
    assert abs(intercept - 1) > 5                        # pulled toward the outliers
    for loss in (losses.huber, losses.pseudo_huber):
        slope, intercept = _fit_line_with_outliers(loss)
        assert abs(slope - 2) < 0.3 and abs(intercept - 1) < 0.3, (loss.__name__, slope, intercept)


def test_l1_fits_the_median_line():
    slope, intercept = _fit_line_with_outliers(
        lambda p, t: losses.l1(p, t), steps=3000)
    assert abs(intercept - 1) < 0.5
