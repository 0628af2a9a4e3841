"""rlnn.optim: each optimizer against its torch.optim update rule written out by hand."""
import numpy as np
import pytest

from rlnn import MLP, clip_grad_norm, losses, optim
from rlnn.reference import check_reference_agrees

N = 7
STEPS = 6


def _gradients(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(N) for _ in range(STEPS)]


def _run(make, grads, theta0):
    """Apply `make(params, grads)` for each gradient in turn; returns the trajectory."""
    params, g = theta0.copy(), np.zeros_like(theta0)
    opt = make(params, g)
    path = []
    for grad in grads:
        g[:] = grad
        opt.step()
        path.append(params.copy())
    return path


def _theta0():
    return np.random.default_rng(100).standard_normal(N)


# ------------------------------------------------------------ reference rules
def sgd_reference(theta, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0):
    theta, b, path = theta.copy(), None, []
    for t, g in enumerate(grads, start=1):
        g = g + wd * theta
        if momentum != 0:
            b = g.copy() if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        theta = theta - lr * g
        path.append(theta)
    return path


def adagrad_reference(theta, grads, lr, lr_decay=0.0, wd=0.0, init=0.0, eps=1e-10):
    theta, s, path = theta.copy(), np.full(N, init), []
    for t, g in enumerate(grads, start=1):
        g = g + wd * theta
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        theta = theta - clr * g / (np.sqrt(s) + eps)
        path.append(theta)
    return path


def rmsprop_reference(theta, grads, lr, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.0,
                      centered=False):
    theta, v, m, b, path = theta.copy(), np.zeros(N), np.zeros(N), np.zeros(N), []
    for g in grads:
        g = g + wd * theta
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            m = alpha * m + (1 - alpha) * g
            v_tilde = v - m * m
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
        path.append(theta)
    return path


def adam_reference(theta, grads, lr, betas=(0.9, 0.999), eps=1e-8, wd=0.0, amsgrad=False):
    b1, b2 = betas
    theta, m, v, v_max, path = theta.copy(), np.zeros(N), np.zeros(N), np.zeros(N), []
    for t, g in enumerate(grads, start=1):
        g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        path.append(theta)
    return path


CASES = [
    ("sgd plain", lambda p, g: optim.SGD(p, g, lr=0.1),
     lambda th, gs: sgd_reference(th, gs, 0.1)),
    ("sgd momentum", lambda p, g: optim.SGD(p, g, lr=0.1, momentum=0.9),
     lambda th, gs: sgd_reference(th, gs, 0.1, momentum=0.9)),
    ("sgd dampening wd", lambda p, g: optim.SGD(p, g, lr=0.05, momentum=0.8, dampening=0.3,
                                                weight_decay=0.01),
     lambda th, gs: sgd_reference(th, gs, 0.05, momentum=0.8, dampening=0.3, wd=0.01)),
    ("sgd nesterov", lambda p, g: optim.SGD(p, g, lr=0.1, momentum=0.9, nesterov=True,
                                            weight_decay=0.1),
     lambda th, gs: sgd_reference(th, gs, 0.1, momentum=0.9, nesterov=True, wd=0.1)),
    ("adagrad", lambda p, g: optim.Adagrad(p, g, lr=0.5),
     lambda th, gs: adagrad_reference(th, gs, 0.5)),
    ("adagrad decay", lambda p, g: optim.Adagrad(p, g, lr=0.5, lr_decay=0.1, weight_decay=0.05,
                                                 initial_accumulator_value=0.2),
     lambda th, gs: adagrad_reference(th, gs, 0.5, lr_decay=0.1, wd=0.05, init=0.2)),
    ("rmsprop", lambda p, g: optim.RMSProp(p, g, lr=0.01),
     lambda th, gs: rmsprop_reference(th, gs, 0.01)),
    ("rmsprop centered momentum", lambda p, g: optim.RMSProp(
        p, g, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.02),
     lambda th, gs: rmsprop_reference(th, gs, 0.01, alpha=0.9, momentum=0.5, centered=True,
                                      wd=0.02)),
    ("adam", lambda p, g: optim.Adam(p, g, lr=0.01),
     lambda th, gs: adam_reference(th, gs, 0.01)),
    ("adam wd betas", lambda p, g: optim.Adam(p, g, lr=0.02, betas=(0.8, 0.99), eps=1e-6,
                                              weight_decay=0.1),
     lambda th, gs: adam_reference(th, gs, 0.02, betas=(0.8, 0.99), eps=1e-6, wd=0.1)),
    ("amsgrad", lambda p, g: optim.Adam(p, g, lr=0.01, amsgrad=True),
     lambda th, gs: adam_reference(th, gs, 0.01, amsgrad=True)),
]


@pytest.mark.parametrize("make, reference", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_update_rule_matches_hand_written_reference(make, reference):
    grads = _gradients()
    # amsgrad only differs from adam once v decreases: shrink late gradients
    grads = [g * (0.1 if i >= 3 else 1.0) for i, g in enumerate(grads)]
    ours = _run(make, grads, _theta0())
    expected = reference(_theta0(), grads)
    for step, (a, b) in enumerate(zip(ours, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step + 1}")


def test_amsgrad_differs_from_adam_when_gradients_shrink():
    grads = [np.ones(N)] * 2 + [np.full(N, 0.01)] * 3
    adam = _run(lambda p, g: optim.Adam(p, g, lr=0.01), grads, _theta0())[-1]
    ams = _run(lambda p, g: optim.Adam(p, g, lr=0.01, amsgrad=True), grads, _theta0())[-1]
    assert not np.allclose(adam, ams)


def test_adam_first_step_moves_each_parameter_by_lr_against_the_gradient_sign():
    theta0 = _theta0()
    g = np.array([3.0, -0.002, 50.0, -7.0, 0.5, -1e-3, 2.0])
    after = _run(lambda p, gr: optim.Adam(p, gr, lr=0.01), [g], theta0)[0]
    # bias correction: m^ = g, v^ = g^2, so the step is lr g / (|g| + eps)
    np.testing.assert_allclose(after - theta0, -0.01 * np.sign(g), rtol=1e-5)
    # the uncorrected slide version would move by lr (1 - b1) / sqrt(1 - b2) ~ 3.16 lr
    uncorrected = 0.01 * 0.1 / np.sqrt(0.001)
    assert uncorrected == pytest.approx(0.0316, rel=1e-3)
    assert np.all(np.abs(after - theta0) < uncorrected / 3)


def test_gradient_array_is_not_modified_by_weight_decay():
    params, grads = _theta0(), np.ones(N)
    optim.SGD(params, grads, lr=0.1, momentum=0.9, weight_decay=0.5).step()
    np.testing.assert_array_equal(grads, 1.0)


def test_lr_is_a_settable_attribute():
    params, grads = np.zeros(3), np.ones(3)
    opt = optim.SGD(params, grads, lr=0.1)
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_allclose(params, -0.6)


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_state_dict_round_trip_continues_bit_for_bit(make):
    grads = _gradients(seed=3) + _gradients(seed=4)
    params, g = _theta0(), np.zeros(N)
    opt = make(params, g)
    for grad in grads[:STEPS]:
        g[:] = grad
        opt.step()
    state = opt.state_dict()
    saved_params = params.copy()
    for grad in grads[STEPS:]:
        g[:] = grad
        opt.step()

    params2, g2 = saved_params.copy(), np.zeros(N)
    resumed = make(params2, g2)
    resumed.load_state_dict(state)
    for grad in grads[STEPS:]:
        g2[:] = grad
        resumed.step()
    np.testing.assert_array_equal(params2, params)
    assert resumed.step_count == opt.step_count == 2 * STEPS


def test_state_dict_holds_copies_and_plain_values():
    params, grads = np.zeros(3), np.ones(3)
    opt = optim.Adam(params, grads, lr=0.1, betas=(0.5, 0.6))
    opt.step()
    state = opt.state_dict()
    assert state["type"] == "Adam" and state["step"] == 1 and state["betas"] == [0.5, 0.6]
    state["exp_avg"][:] = 123.0
    assert not np.any(opt.exp_avg == 123.0)


def test_load_state_dict_rejects_mismatches():
    params, grads = np.zeros(3), np.ones(3)
    adam = optim.Adam(params, grads)
    with pytest.raises(ValueError, match="Adam"):
        adam.load_state_dict(optim.SGD(params, grads, lr=0.1).state_dict())
    other = optim.Adam(np.zeros(4), np.zeros(4)).state_dict()
    with pytest.raises(ValueError, match=r"exp_avg.*\(4,\).*\(3,\)"):
        adam.load_state_dict(other)
    incomplete = adam.state_dict()
    del incomplete["exp_avg_sq"]
    with pytest.raises(ValueError, match="exp_avg_sq"):
        adam.load_state_dict(incomplete)


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_float32_parameters_keep_float32_state(make):
    params, grads = np.ones(5, np.float32), np.full(5, 0.5, np.float32)
    opt = make(params, grads)
    opt.step()
    opt.step()
    assert params.dtype == np.float32
    for value in opt.state_dict().values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


def test_optimizer_trains_an_mlp_through_its_flat_vectors():
    net = MLP([2, 16, 1], seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 2))
    y = x[:, :1] * 0.5 - x[:, 1:] * 0.25
    opt = optim.Adam(net.flat_params, net.flat_grads, lr=1e-2)
    first = None
    for _ in range(300):
        net.zero_grad()
        loss, dy = losses.l2(net.forward(x), y)
        first = loss if first is None else first
        net.backward(dy)
        opt.step()
    assert loss < first * 0.01


def test_bad_arguments():
    p, g = np.zeros(3), np.zeros(3)
    with pytest.raises(TypeError, match="flat_params"):
        optim.Adam([p], [g])
    with pytest.raises(ValueError, match="match"):
        optim.Adam(p, np.zeros(4))
    with pytest.raises(ValueError, match="match"):
        optim.Adam(p, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(p, g, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(p, g, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam(p, g, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSProp(p, g, alpha=1.5)


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_step_pre_hook_sees_the_old_parameters_and_stops_after_remove(make):
    params, grads = _theta0(), np.ones(N)
    opt = make(params, grads)
    seen = []
    handle = opt.register_step_pre_hook(lambda o: seen.append((o, o.params.copy(), o.step_count)))
    before = params.copy()
    opt.step()
    assert len(seen) == 1
    hooked_opt, hooked_params, count = seen[0]
    assert hooked_opt is opt and count == 0                # called at the start of step()
    np.testing.assert_array_equal(hooked_params, before)   # ... before the update
    assert not np.array_equal(params, before)              # which then happened
    handle.remove()
    opt.step()
    handle.remove()                                        # twice is harmless
    assert len(seen) == 1 and opt.step_count == 2


def test_step_pre_hooks_run_in_registration_order_and_leave_the_update_unchanged():
    grads = _gradients()
    calls = []
    hooked = _run(lambda p, g: _with_hooks(optim.Adam(p, g, lr=0.01), calls), grads, _theta0())
    plain = _run(lambda p, g: optim.Adam(p, g, lr=0.01), grads, _theta0())
    np.testing.assert_array_equal(hooked[-1], plain[-1])
    assert calls == ["first", "second"] * len(grads)


def _with_hooks(opt, calls):
    opt.register_step_pre_hook(lambda o: calls.append("first"))
    opt.register_step_pre_hook(lambda o: calls.append("second"))
    return opt


# ------------------------------------------------------------- clip_grad_norm
def test_clip_grad_norm_scales_in_place_and_returns_the_norm_before():
    g = np.array([3.0, 4.0])
    assert clip_grad_norm(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g, [3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)])   # torch's 1e-6
    g = np.array([0.3, 0.4])
    assert clip_grad_norm(g, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(g, [0.3, 0.4])                            # under the limit


def test_clip_grad_norm_over_a_list_and_without_limit():
    parts = [np.array([[1.0, 2.0]]), np.array([2.0])]
    assert clip_grad_norm(parts, None) == pytest.approx(3.0)
    assert clip_grad_norm(parts, np.inf) == pytest.approx(3.0)
    np.testing.assert_array_equal(parts[1], [2.0])
    assert clip_grad_norm(parts, 1.5) == pytest.approx(3.0)
    total = np.sqrt(sum(np.sum(p ** 2) for p in parts))
    assert total == pytest.approx(1.5, rel=1e-6)
    g32 = np.array([30.0, 40.0], np.float32)
    clip_grad_norm(g32, 5.0)
    assert g32.dtype == np.float32 and np.linalg.norm(g32) == pytest.approx(5.0, rel=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_training_step_matches_the_naive_per_layer_reference(activation):
    check_reference_agrees(activation)        # raises AssertionError on any mismatch
