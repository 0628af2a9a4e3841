"""rlnn.MLP: layout, backprop against finite differences, dtypes, errors, copies."""
import tracemalloc

import numpy as np
import pytest

from rlnn import MLP, activations, gradcheck, init, losses

def _data(sizes, batch=5, dtype=np.float64):
    rng = np.random.default_rng(sum(sizes) + batch)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    t = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    return x, t


def test_lecture_parameter_count():
    assert MLP([784, 512, 512, 10]).num_params() == 669706
    assert MLP([4, 64, 64, 2]).num_params() == 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2


def test_params_are_views_into_one_flat_vector():
    net = MLP([3, 4, 2])
    shapes = [p.shape for p in net.params]
    assert shapes == [(3, 4), (4,), (4, 2), (2,)]
    assert [g.shape for g in net.grads] == shapes
    for p in net.params:
        assert np.shares_memory(p, net.flat_params)
    for g in net.grads:
        assert np.shares_memory(g, net.flat_grads)
    net.params[2][1, 0] = 123.0                      # writable in place, lands in the flat vector
    assert net.flat_params[3 * 4 + 4 + 1 * 2 + 0] == 123.0
    net.flat_params[:] = 0.5
    assert all(np.all(p == 0.5) for p in net.params)
    assert net.weights[1] is not None and net.biases[0].shape == (4,)


def test_attributes():
    net = MLP([4, 8, 8, 3], activation="relu", output_activation="tanh", dtype=np.float32)
    assert net.sizes == [4, 8, 8, 3]
    assert net.activation == "relu" and net.output_activation == "tanh"
    assert net.dtype == np.float32 and net.num_layers == 3
    assert "relu" in repr(net)


def _check_gradients(net, x, t, loss=losses.l2):
    net.zero_grad()
    _, dy = loss(net.forward(x), t)
    dx = net.backward(dy)

    def value():
        return loss(net.forward(x), t)[0]

    return gradcheck(value, net.flat_params, net.flat_grads.copy()), gradcheck(value, x, dx)


# Central differences with eps = 1e-6 carry ~1e-10 absolute rounding noise for
# O(1) losses, so components of size ~1e-4 can show relative errors ~1e-6;
# a wrong gradient shows errors of order 1e-2 to 1.
TOL = 1e-5


@pytest.mark.parametrize("sizes", [[3, 2], [3, 5, 2], [2, 6, 5, 3], [4, 3, 3, 3, 1]])
@pytest.mark.parametrize("activation", activations.NAMES)
def test_backprop_matches_finite_differences(sizes, activation):
    net = MLP(sizes, activation=activation, seed=3)
    rng = np.random.default_rng(len(sizes))
    for b in net.biases:                              # nonzero biases exercise db
        b[:] = rng.standard_normal(b.shape) * 0.3
    x, t = _data(sizes)
    err_params, err_input = _check_gradients(net, x, t)
    assert err_params < TOL
    assert err_input < TOL


@pytest.mark.parametrize("output_activation", ["sigmoid", "tanh", "softplus"])
def test_backprop_through_output_activation_and_other_losses(output_activation):
    net = MLP([3, 6, 2], activation="elu", output_activation=output_activation, seed=1)
    x, t = _data([3, 6, 2], batch=4)
    for loss in (losses.huber, losses.pseudo_huber, losses.l1):
        err_params, err_input = _check_gradients(net, x, t, loss)
        assert err_params < TOL and err_input < TOL


def test_backprop_through_cross_entropy():
    net = MLP([3, 7, 4], activation="tanh", seed=2)
    x, _ = _data([3, 7, 4], batch=6)
    labels = np.array([0, 3, 2, 1, 1, 0])
    err_params, err_input = _check_gradients(
        net, x, labels, lambda z, y: losses.softmax_cross_entropy(z, y, weights=np.arange(6) - 2.5))
    assert err_params < TOL and err_input < TOL


def test_forward_matches_the_layer_formula():
    net = MLP([3, 4, 2], activation="tanh", output_activation="sigmoid", seed=5)
    x, _ = _data([3, 4, 2])
    W1, b1, W2, b2 = net.params
    h = np.tanh(x @ W1 + b1)
    y = 1 / (1 + np.exp(-(h @ W2 + b2)))
    np.testing.assert_allclose(net.forward(x), y, rtol=1e-13)
    np.testing.assert_allclose(net.preactivations[0], x @ W1 + b1, rtol=1e-13)
    np.testing.assert_allclose(net.activations_cache[0], h, rtol=1e-13)
    np.testing.assert_allclose(net.activations_cache[-1], y, rtol=1e-13)
    np.testing.assert_array_equal(net.layer_inputs[0], x)
    np.testing.assert_array_equal(net.layer_inputs[1], net.activations_cache[0])


def test_layer_statistics_from_the_caches():
    net = MLP([3, 50, 1], activation="relu", seed=0)
    assert net.preactivations == [] and net.activations_cache == []
    x = np.random.default_rng(0).standard_normal((40, 3))
    net.forward(x)
    h, z = net.activations_cache[0], net.preactivations[0]
    dead = np.mean(np.all(h == 0, axis=0))             # units silent on the whole batch
    assert 0.0 <= dead < 1.0
    np.testing.assert_array_equal(h == 0, z <= 0)


def test_backward_accumulates_until_zero_grad():
    net = MLP([3, 4, 2], seed=0)
    x, t = _data([3, 4, 2])
    _, dy = losses.l2(net.forward(x), t)
    net.backward(dy)
    once = net.flat_grads.copy()
    net.forward(x)
    net.backward(dy)
    np.testing.assert_allclose(net.flat_grads, 2 * once, rtol=1e-14)
    net.zero_grad()
    assert not net.flat_grads.any()


def test_backward_without_accumulate_overwrites_the_gradient():
    net = MLP([3, 4, 2], seed=0)
    x, t = _data([3, 4, 2])
    _, dy = losses.l2(net.forward(x), t)
    net.zero_grad()
    net.backward(dy)
    fresh = net.flat_grads.copy()
    net.flat_grads[:] = 7.0                      # stale values must not leak into the result
    net.forward(x)
    net.backward(dy, accumulate=False)
    np.testing.assert_array_equal(net.flat_grads, fresh)


def test_gradient_accumulation_over_split_batch_equals_full_batch():
    net = MLP([3, 5, 2], seed=4)
    x, t = _data([3, 5, 2], batch=6)
    net.zero_grad()
    net.forward(x)
    net.backward(np.ones((6, 2)))
    full = net.flat_grads.copy()
    net.zero_grad()
    for rows in (slice(0, 2), slice(2, 6)):           # two batch sizes, two workspaces
        net.forward(x[rows])
        net.backward(np.ones((rows.stop - rows.start, 2)))
    np.testing.assert_allclose(net.flat_grads, full, rtol=1e-13)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_backward_of_leading_rows_equals_backward_of_those_rows_alone(activation):
    # One forward over [loss rows; value-only rows], backward through the loss rows only.
    net = MLP([3, 6, 5, 2], activation=activation, seed=2)
    x, _ = _data([3, 6, 5, 2], batch=7)
    dy = np.random.default_rng(3).standard_normal((4, 2))
    net.zero_grad()
    net.forward(x[:4])
    dx_alone = net.backward(dy)
    alone = net.flat_grads.copy()
    net.zero_grad()
    out = net.forward(x)
    dx_rows = net.backward(dy, rows=4)
    np.testing.assert_allclose(net.flat_grads, alone, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx_rows, dx_alone, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out[4:], net.predict(x[4:]), rtol=1e-12)
    net.zero_grad()
    net.forward(x)
    assert net.backward(np.pad(dy, ((0, 3), (0, 0))), input_grad=False) is None
    np.testing.assert_allclose(net.flat_grads, alone, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"rows must be an int in \[1, 7\].*8"):
        net.backward(dy, rows=8)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3, 2\)"):
        net.backward(dy[:3], rows=4)


@pytest.mark.parametrize("activation", ["relu", "tanh", "identity"])
@pytest.mark.parametrize("rows", [None, 4])
def test_input_gradient_alone_leaves_the_parameter_gradient_untouched(activation, rows):
    # param_grads=False: dL/dx (finite differences) with grads exactly as before, accumulating or not.
    net = MLP([3, 6, 6, 2], activation=activation, seed=4)
    x, t = _data([3, 6, 6, 2], batch=7)
    n = 7 if rows is None else rows
    before = np.random.default_rng(5).standard_normal(net.flat_grads.shape)
    for accumulate in (True, False):
        net.flat_grads[...] = before
        _, dy = losses.l2(net.forward(x)[:n], t[:n])
        dx = net.backward(dy, rows=rows, accumulate=accumulate, param_grads=False)
        assert np.array_equal(net.flat_grads, before)
        assert gradcheck(lambda: losses.l2(net.forward(x)[:n], t[:n])[0], x, np.pad(dx, ((0, 7 - n), (0, 0)))) < TOL
    net.forward(x)
    net.zero_grad()
    full_dx = net.backward(np.ones((7, 2)))
    net.forward(x)
    np.testing.assert_array_equal(net.backward(np.ones((7, 2)), param_grads=False), full_dx)


def test_predict_equals_forward_for_one_observation_and_batches():
    net = MLP([4, 16, 16, 3], activation="relu", seed=9)
    x, _ = _data([4, 16, 16, 3], batch=7)
    batch_out = net.forward(x)
    np.testing.assert_allclose(net.predict(x), batch_out, rtol=1e-13)
    single = net.predict(x[2])
    assert single.shape == (3,)
    np.testing.assert_allclose(single, batch_out[2], rtol=1e-13)
    assert net.predict(list(x[2])).shape == (3,)


def test_predict_does_not_disturb_the_training_cache():
    net = MLP([3, 5, 2], seed=1)
    x, t = _data([3, 5, 2])
    _, dy = losses.l2(net.forward(x), t)
    net.backward(dy)
    expected = net.flat_grads.copy()
    net.zero_grad()
    net.forward(x)
    net.predict(x * 3)
    net.predict(x[0] * 3)
    net.backward(dy)
    np.testing.assert_array_equal(net.flat_grads, expected)


def test_outputs_are_fresh_arrays_and_inputs_are_not_modified():
    net = MLP([3, 5, 2], seed=1)
    x, t = _data([3, 5, 2])
    x_before = x.copy()
    y1 = net.forward(x)
    y1_copy = y1.copy()
    net.forward(x * 2)                               # same batch size: buffers are reused
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(x, x_before)
    single = x[0].copy()
    net.predict(single)
    np.testing.assert_array_equal(single, x[0])


def test_input_changes_after_forward_do_not_corrupt_backward():
    net = MLP([3, 5, 2], seed=1)
    x, _ = _data([3, 5, 2])
    net.forward(x)
    net.backward(np.ones((5, 2)))
    expected = net.flat_grads.copy()
    net.zero_grad()
    x2 = x.copy()
    net.forward(x2)
    x2[:] = 99.0
    net.backward(np.ones((5, 2)))
    np.testing.assert_array_equal(net.flat_grads, expected)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_float32_end_to_end(activation):
    net = MLP([4, 8, 2], activation=activation, dtype=np.float32, seed=0)
    x, t = _data([4, 8, 2])                            # float64 data is cast once
    assert net.flat_params.dtype == np.float32 and net.flat_grads.dtype == np.float32
    y = net.forward(x)
    assert y.dtype == np.float32
    _, dy = losses.l2(y, t)
    dx = net.backward(dy.astype(np.float64))
    assert dx.dtype == np.float32 and net.flat_grads.dtype == np.float32
    assert all(c.dtype == np.float32 for c in net.activations_cache + net.preactivations)
    assert net.predict(x[0]).dtype == np.float32 and net.predict(x).dtype == np.float32
    # and it agrees with the float64 network built from the same seed
    net64 = MLP([4, 8, 2], activation=activation, dtype=np.float64, seed=0)
    np.testing.assert_allclose(y, net64.forward(x), rtol=1e-4, atol=1e-5)


def test_inputs_are_cast_once_and_complex_inputs_are_refused():
    net = MLP([4, 8, 2], dtype=np.float32, seed=0)
    x = np.random.default_rng(0).integers(-3, 3, size=(5, 4))       # ints cast like floats
    np.testing.assert_array_equal(net.forward(x), net.forward(x.astype(np.float32)))
    np.testing.assert_array_equal(net.predict(x[0]), net.predict(x[0].astype(np.float32)))
    for bad in (x.astype(complex), x[0].astype(complex)):
        with pytest.raises(TypeError, match="real-valued input, got dtype complex128"):
            net.forward(bad) if bad.ndim == 2 else net.predict(bad)


def test_same_seed_same_weights_and_generator_seeds():
    a, b = MLP([3, 8, 2], seed=11), MLP([3, 8, 2], seed=11)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, MLP([3, 8, 2], seed=12).flat_params)
    g = MLP([3, 8, 2], seed=np.random.default_rng(11))
    np.testing.assert_array_equal(g.flat_params, a.flat_params)
    assert not any(b.any() for b in a.biases)


def test_default_init_is_he_for_relu_and_glorot_for_tanh():
    relu_net = MLP([400, 300, 1], activation="relu", seed=0)
    tanh_net = MLP([400, 300, 1], activation="tanh", seed=0)
    # uniform with limit a has std a / sqrt(3)
    assert relu_net.weights[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert tanh_net.weights[0].std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert np.abs(relu_net.weights[0]).max() <= np.sqrt(6 / 400)


@pytest.mark.parametrize("name", init.NAMES)
def test_named_initialisers(name):
    net = MLP([50, 40, 30], init=name, seed=0)
    w = net.weights[0]
    fan_in, fan_out = w.shape
    if name == "orthogonal":
        np.testing.assert_allclose(w.T @ w, np.eye(fan_out), atol=1e-12)
        w2 = net.weights[1]                                # fan_in 40 > fan_out 30
        np.testing.assert_allclose(w2.T @ w2, np.eye(30), atol=1e-12)
    else:
        target = 2 / fan_in if name.startswith("he") else 2 / (fan_in + fan_out)
        assert w.var() == pytest.approx(target, rel=0.1)


def test_orthogonal_gain_and_callable_init():
    w = init.orthogonal(3, 5, np.random.default_rng(0), gain=2.0)
    np.testing.assert_allclose(w @ w.T, 4 * np.eye(3), atol=1e-12)
    net = MLP([2, 3], init=lambda fi, fo, rng, dtype: np.full((fi, fo), 0.25, dtype))
    assert np.all(net.weights[0] == 0.25)
    with pytest.raises(ValueError, match="shape"):
        MLP([2, 3], init=lambda fi, fo, rng, dtype: np.zeros((fo, fi)))
    with pytest.raises(ValueError, match="glorot_uniform"):
        MLP([2, 3], init="xavier")


def test_bad_shapes_raise_clear_errors():
    net = MLP([4, 8, 2])
    with pytest.raises(ValueError, match=r"\(batch, 4\).*\(5, 3\)"):
        net.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(batch, 4\).*\(4,\)"):
        net.forward(np.zeros(4))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        net.predict(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(2, 2, 4\)"):
        net.predict(np.zeros((2, 2, 4)))
    net.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(5,\)"):
        net.backward(np.zeros(5))
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(6, 2\)"):
        net.backward(np.zeros((6, 2)))


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        MLP([2, 3, 1]).backward(np.zeros((1, 1)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="sizes"):
        MLP([4])
    with pytest.raises(ValueError, match="sizes"):
        MLP([4, 0, 2])
    with pytest.raises(ValueError, match="float32 or float64"):
        MLP([4, 2], dtype=np.int32)
    with pytest.raises(ValueError, match="allowed"):
        MLP([4, 2], activation="gelu")
    with pytest.raises(ValueError, match="allowed"):
        MLP([4, 2], output_activation="softmax")


def test_copy_is_independent():
    net = MLP([3, 5, 2], seed=0)
    clone = net.copy()
    np.testing.assert_array_equal(clone.flat_params, net.flat_params)
    assert not np.shares_memory(clone.flat_params, net.flat_params)
    clone.params[0][0, 0] += 1.0
    assert clone.params[0][0, 0] != net.params[0][0, 0]
    x, _ = _data([3, 5, 2])
    net.forward(x)                                      # caches are not shared either
    clone.forward(x * 0)
    net.backward(np.ones((5, 2)))
    assert not clone.flat_grads.any()
    assert clone.sizes == net.sizes and clone.activation == net.activation


def test_copy_from_and_soft_update():
    online, target = MLP([3, 5, 2], seed=0), MLP([3, 5, 2], seed=1)
    before = target.flat_params.copy()
    target.soft_update(online, tau=0.1)
    np.testing.assert_allclose(target.flat_params, 0.1 * online.flat_params + 0.9 * before,
                               rtol=1e-14)
    target.soft_update(online, tau=0.0)
    np.testing.assert_allclose(target.flat_params, 0.1 * online.flat_params + 0.9 * before,
                               rtol=1e-14)
    target.soft_update(online, tau=1.0)
    np.testing.assert_array_equal(target.flat_params, online.flat_params)
    other = MLP([3, 5, 2], seed=2)
    target.copy_from(other)
    np.testing.assert_array_equal(target.flat_params, other.flat_params)
    assert not np.shares_memory(target.flat_params, other.flat_params)
    with pytest.raises(ValueError, match=r"\[3, 5, 2\].*\[3, 4, 2\]"):
        target.copy_from(MLP([3, 4, 2]))
    with pytest.raises(ValueError, match="tau"):
        target.soft_update(online, tau=1.5)


def test_state_dict_round_trip_and_mismatch_errors():
    net = MLP([3, 5, 2], activation="relu", seed=0, dtype=np.float32)
    state = net.state_dict()
    assert state["sizes"] == [3, 5, 2] and state["activation"] == "relu"
    assert state["dtype"] == "float32"
    state["flat_params"][0] = 42.0                      # a copy, not a view
    assert net.flat_params[0] != 42.0
    fresh = MLP([3, 5, 2], activation="relu", seed=99, dtype=np.float32)
    fresh.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(fresh.flat_params, net.flat_params)
    rebuilt = MLP.from_state_dict(net.state_dict())
    np.testing.assert_array_equal(rebuilt.flat_params, net.flat_params)
    assert rebuilt.dtype == np.float32 and rebuilt.activation == "relu"

    with pytest.raises(ValueError, match="sizes"):
        MLP([3, 6, 2], activation="relu").load_state_dict(net.state_dict())
    with pytest.raises(ValueError, match="activation"):
        MLP([3, 5, 2], activation="tanh").load_state_dict(net.state_dict())
    bad = net.state_dict()
    del bad["sizes"]
    bad["flat_params"] = bad["flat_params"][:-1]
    with pytest.raises(ValueError, match=r"shape \(31,\), expected \(32,\)"):
        fresh.load_state_dict(bad)


def test_workspaces_are_reused_and_steady_state_allocates_little():
    net = MLP([4, 64, 64, 2], seed=0)
    x, t = _data([4, 64, 64, 2], batch=256)
    _, dy = losses.l2(net.forward(x), t)
    net.backward(dy)
    buffers = [id(a) for a in net.preactivations + net.activations_cache]
    tracemalloc.start()
    try:
        for _ in range(3):
            net.forward(x)
            net.backward(dy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [id(a) for a in net.preactivations + net.activations_cache] == buffers
    # A full (256, 64) float64 temporary would be 131 kB.  What remains is the
    # returned copies (256x2 output, 256x4 dL/dx) and NumPy's internal ufunc
    # buffer for the broadcast bias add (at most 8192 elements = 64 kB).
    assert peak < 256 * 64 * 8 * 3 // 4
