"""Losses returning ``(value, dvalue/dpred)`` with mean reduction.

Definitions follow PyTorch (``reduction="mean"``), with residual r = pred - target
and N = pred.size (number of elements)::

    l1            mean |r|                                  (torch.nn.L1Loss)
    l2            mean r^2                                  (torch.nn.MSELoss)
    huber         mean { r^2/2            if |r| <= d       (torch.nn.HuberLoss(delta=d))
                       { d (|r| - d/2)    otherwise
    pseudo_huber  mean d^2 (sqrt(1 + (r/d)^2) - 1)
    softmax_cross_entropy   mean_i -log softmax(z_i)[y_i]   (F.cross_entropy, int labels)

``weights`` (shape (batch,), any sign) multiplies sample i's loss terms before
the mean: value = (1/N) sum_ij w_i l_ij.  It divides by the element count, not
by sum(w), so weights may be negative advantages or sum to zero (this differs
from torch's per-*class* ``weight`` argument, which normalises by sum(w)).

The gradient is dvalue/dpred, same shape and dtype as ``pred``; ``value`` is a
Python float.  pred and target must have identical shapes: a (64, 1) vs (64,)
mix would silently broadcast to (64, 64), so it raises ValueError instead.
"""
import numpy as np

from .activations import log_softmax, softmax

__all__ = ["l1", "l2", "huber", "pseudo_huber", "softmax_cross_entropy",
           "entropy", "NAMES", "get"]


def _prepare(pred, target, weights):
    """Arrays as pred's float dtype; shape checks; weights shaped to broadcast."""
    pred = np.asarray(pred)
    if pred.dtype.kind != "f":
        pred = pred.astype(np.float64)
    if type(target) is not np.ndarray or target.dtype != pred.dtype:
        target = np.asarray(target, dtype=pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred shape {pred.shape} does not match target shape {target.shape}")
    return pred, target, None if weights is None else _sample_weights(weights, pred)


def _sample_weights(weights, pred):
    """weights (batch,) reshaped to (batch, 1, ...) so it scales whole rows."""
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=pred.dtype)
    if pred.ndim == 0 or weights.shape != pred.shape[:1]:
        raise ValueError(
            f"weights shape {weights.shape} must be (batch,) = {pred.shape[:1]} "
            f"for pred shape {pred.shape}")
    return weights.reshape(weights.shape + (1,) * (pred.ndim - 1))


def _reduce(elementwise, grad, w, n):
    """value = (1/N) sum w * l,  grad = w * dl/dpred / N."""
    if w is not None:
        elementwise = elementwise * w
        grad *= w
    grad /= n
    return float(np.sum(elementwise) / n), grad


def l1(pred, target, weights=None):
    """mean |r|;  d/dpred = sign(r) / N  (sign(0) = 0, as torch)."""
    pred, target, w = _prepare(pred, target, weights)
    r = pred - target
    return _reduce(np.abs(r), np.sign(r), w, r.size)


def l2(pred, target, weights=None):
    """mean r^2 (MSE);  d/dpred = 2 r / N."""
    pred, target, w = _prepare(pred, target, weights)
    r = pred - target
    if w is None:       # the common case, in two ufunc calls: sum r^2 = r . r
        return float(np.vdot(r, r)) / r.size, np.multiply(r, pred.dtype.type(2 / r.size), out=r)
    return _reduce(r * r, 2 * r, w, r.size)


def huber(pred, target, delta=1.0, weights=None):
    """mean of r^2/2 for |r| <= d, d(|r| - d/2) beyond;  d/dpred = clip(r, -d, d) / N.

    Quadratic near 0, linear in the tails: an outlier's pull on the fit is
    capped at d, whereas l2's grows with the residual.

    With c = clip(r, -d, d) both branches are one expression, c (r - c/2):
    r^2/2 where c = r, and d(|r| - d/2) where c = +-d.  So the value and the
    gradient c/N come from the same few ufunc calls, no branch masks.
    """
    _check_delta(delta)
    pred, target, w = _prepare(pred, target, weights)
    d = pred.dtype.type(delta)
    r = pred - target
    c = np.maximum(r, -d)
    np.minimum(c, d, out=c)                              # c = clip(r, -d, d)
    tail = np.multiply(c, pred.dtype.type(0.5))
    np.subtract(r, tail, out=tail)                       # r - c/2
    if w is None:
        return float(np.vdot(c, tail)) / r.size, np.multiply(c, pred.dtype.type(1 / r.size), out=c)
    return _reduce(c * tail, c, w, r.size)


def pseudo_huber(pred, target, delta=1.0, weights=None):
    """mean d^2 (sqrt(1 + (r/d)^2) - 1);  d/dpred = r / sqrt(1 + (r/d)^2) / N.

    A smooth Huber: ~ r^2/2 for |r| << d, ~ d|r| for |r| >> d.
    """
    _check_delta(delta)
    pred, target, w = _prepare(pred, target, weights)
    r = pred - target
    root = np.sqrt(1 + (r / delta) ** 2)
    return _reduce(delta * delta * (root - 1), r / root, w, r.size)


def _check_delta(delta):
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")


def softmax_cross_entropy(logits, labels, weights=None):
    """mean_i -w_i log p_i[y_i] with p_i = softmax(z_i);  d/dz = w_i (p_i - onehot(y_i)) / B.

    logits: (B, K) float, labels: (B,) ints in [0, K), weights: (B,) or None.
    Computed from log_softmax, so logits of +-1e3 stay finite.

    REINFORCE: ``softmax_cross_entropy(logits, actions, weights=advantages)`` is
    the loss -mean_i A_i log pi(a_i|s_i).  Its gradient is (p - onehot(a)) A / B,
    so the descent direction -grad is one-hot(action) minus probabilities,
    scaled by the return (advantage) A_i / B: a step raises the
    log-probability of actions with positive advantage and lowers it for
    negative ones.  Mind the sign: minimising this loss *ascends* the return.
    """
    z = np.asarray(logits)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must have shape (batch, classes), got {z.shape}")
    labels = np.asarray(labels)
    batch, classes = z.shape
    if labels.shape != (batch,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape ({batch},), got "
                         f"{labels.dtype} {labels.shape}")
    if batch and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}), got "
                         f"[{labels.min()}, {labels.max()}]")
    rows = np.arange(batch)
    nll = -log_softmax(z)[rows, labels]        # -log p_i[y_i], shape (B,)
    grad = softmax(z)
    grad[rows, labels] -= 1                    # p - onehot(y)
    w = _sample_weights(weights, z)
    if w is not None:
        nll = nll * w[:, 0]
        grad *= w
    grad /= batch
    return float(np.sum(nll) / batch), grad


def entropy(logits, weights=None):
    """Mean policy entropy H = mean_i -sum_k p_ik log p_ik and dH/dlogits.

    With p = softmax(z):  dH_i/dz_ij = -p_ij (log p_ij + H_i), divided by B
    for the mean.  (From dp_k/dz_j = p_k (delta_kj - p_j).)  Add
    ``-beta * H`` to a loss, i.e. subtract ``beta * grad``, to reward exploration.
    logits: (B, K).  ``weights`` (B,) scales row i as in the losses:
    H = (1/B) sum_i w_i H_i (e.g. w = mask * B / n_valid: the mean over valid rows).
    """
    z = np.asarray(logits)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must have shape (batch, classes), got {z.shape}")
    logp = log_softmax(z)
    p = np.exp(logp)
    h = -np.add.reduce(p * logp, axis=1, keepdims=True)      # (B, 1); np.sum without its dispatch
    grad = -p * (logp + h) / z.shape[0]
    w = _sample_weights(weights, z)
    if w is not None:
        h = h * w
        grad *= w
    return float(np.add.reduce(h, axis=None)) / z.shape[0], grad


_REGISTRY = {"l1": l1, "l2": l2, "huber": huber, "pseudo_huber": pseudo_huber}
NAMES = tuple(_REGISTRY)
"""Regression losses available through :func:`get`."""


def get(name):
    """The regression loss function called ``name`` (l1, l2, huber, pseudo_huber)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown loss {name!r}; allowed: {', '.join(NAMES)}") from None
