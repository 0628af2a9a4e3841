"""Finite-difference gradient checking (float64).

``rlnn.gradcheck`` is the function :func:`gradcheck` below (the package
re-exports it under the module's name); import helpers with
``from rlnn.gradcheck import numerical_gradient, relative_error``.

Central differences: for every element i of x,

    n_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

which has truncation error O(eps^2 f''') and rounding error about
1e-16 |f| / eps; eps = 1e-6 balances the two in float64.  The comparison is

    err_i = |a_i - n_i| / max(floor, |a_i| + |n_i|)          (floor = 1e-8)

and gradcheck returns max_i err_i.  For a correct gradient of an O(1) loss
it is typically 1e-10 to 1e-7, and up to ~1e-6 for components of size
~1e-4 (their rounding noise is relatively larger); a wrong gradient gives
1e-2 to 1.  So keep test losses O(1), use a tolerance around 1e-5, and stay
away from kinks (relu at 0, |r| = delta in Huber).
"""
import numpy as np

__all__ = ["gradcheck", "numerical_gradient", "relative_error"]


def _scalar(value):
    return float(np.asarray(value).reshape(()))


def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed in place one
    element at a time and restored exactly.  x must be a writeable float64 array.
    If f returns a tuple, its first element is the value.
    """
    _check_float64(x)

    def value():
        return _scalar(_first(f()))

    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = value()
        flat[i] = original - eps
        minus = value()
        flat[i] = original                      # restore the exact bits
        out[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic, numeric, floor=1e-8):
    """max_i |a_i - n_i| / max(floor, |a_i| + |n_i|)  (0.0 for empty arrays)."""
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic gradient shape {a.shape} != numeric shape {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(floor, np.abs(a) + np.abs(n))))


def gradcheck(f, params, grads=None, eps=1e-6, floor=1e-8):
    """Max relative error between an analytic gradient and central differences.

    Args:
        f: zero-argument callable computing the scalar loss from the current
           contents of ``params``.  If ``grads`` is None it must return
           ``(value, grad)``; the grad from the unperturbed call is the
           analytic gradient (handy for losses: ``lambda: losses.l2(p, t)``).
        params: writeable float64 array that f reads (net.flat_params, a loss
           input, an activation input ...); perturbed in place, then restored.
        grads: analytic dL/dparams, same shape as params, or None (see f).
        eps: finite-difference step.
        floor: denominator floor of the relative error (see module doc).

    Returns:
        float, max_i |a_i - n_i| / max(floor, |a_i| + |n_i|).

    Example (an MLP's parameter gradient)::

        net = MLP([3, 5, 2]); x, t = ...
        loss = lambda: losses.l2(net.forward(x), t)[0]
        net.zero_grad(); net.backward(losses.l2(net.forward(x), t)[1])
        assert gradcheck(loss, net.flat_params, net.flat_grads) < 1e-6
    """
    _check_float64(params)
    if grads is None:
        result = f()
        if not isinstance(result, tuple) or len(result) != 2:
            raise ValueError("with grads=None, f() must return (value, grad)")
        grads = np.array(result[1], dtype=np.float64)     # copy: f may reuse buffers
    else:
        grads = np.array(grads, dtype=np.float64)
    if grads.shape != params.shape:
        raise ValueError(f"grads shape {grads.shape} != params shape {params.shape}")
    return relative_error(grads, numerical_gradient(f, params, eps), floor)


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def _check_float64(x):
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"gradcheck needs a float64 numpy array to perturb, got {kind}")
    if not x.flags.writeable:
        raise ValueError("gradcheck needs a writeable array to perturb")
