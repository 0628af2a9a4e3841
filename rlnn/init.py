"""Weight initialisers: ``fn(fan_in, fan_out, rng, dtype) -> array (fan_in, fan_out)``.

Values are drawn in float64 and then cast, so a float32 and a float64 network
built with the same seed start from the same weights (up to rounding).

Variance targets (n_in = fan_in, n_out = fan_out):

* Glorot/Xavier: Var(W) = 2 / (n_in + n_out), keeps forward and backward
  signal variance roughly constant for tanh/sigmoid-like units.
* He/Kaiming:    Var(W) = 2 / n_in, compensates for ReLU zeroing half the units.
* Orthogonal:    W has orthonormal rows or columns, times ``gain``.

A uniform U(-a, a) has variance a^2 / 3, hence a = sqrt(3 Var).
"""
import numpy as np

from . import activations as _activations

__all__ = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
           "orthogonal", "NAMES", "get", "default_for"]


def glorot_uniform(fan_in, fan_out, rng, dtype=np.float64):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


def glorot_normal(fan_in, fan_out, rng, dtype=np.float64):
    """N(0, s^2), s = sqrt(2 / (fan_in + fan_out))."""
    s = np.sqrt(2.0 / (fan_in + fan_out))
    return (s * rng.standard_normal((fan_in, fan_out))).astype(dtype)


def he_uniform(fan_in, fan_out, rng, dtype=np.float64):
    """U(-a, a), a = sqrt(6 / fan_in)."""
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


def he_normal(fan_in, fan_out, rng, dtype=np.float64):
    """N(0, s^2), s = sqrt(2 / fan_in)."""
    s = np.sqrt(2.0 / fan_in)
    return (s * rng.standard_normal((fan_in, fan_out))).astype(dtype)


def orthogonal(fan_in, fan_out, rng, dtype=np.float64, gain=1.0):
    """gain * Q with Q from the QR decomposition of a Gaussian matrix.

    The signs of R's diagonal are folded into Q so that Q is uniformly
    distributed over orthogonal matrices (plain QR output is not).
    For fan_in >= fan_out the columns are orthonormal, otherwise the rows.
    Use ``functools.partial(orthogonal, gain=...)`` to pass a gain to ``MLP``.
    """
    big, small = max(fan_in, fan_out), min(fan_in, fan_out)
    q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q *= np.sign(np.diag(r))
    w = q if fan_in >= fan_out else q.T
    return (gain * w).astype(dtype)


_REGISTRY = {f.__name__: f for f in
             (glorot_uniform, glorot_normal, he_uniform, he_normal, orthogonal)}
NAMES = tuple(_REGISTRY)


def get(name):
    """The initialiser called ``name``; a callable passes through unchanged."""
    if callable(name):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown init {name!r}; allowed: {', '.join(NAMES)} or a callable") from None


def default_for(activation):
    """He uniform for the ReLU family, Glorot uniform otherwise."""
    name = _activations.get(activation).name
    return he_uniform if name in _activations.RELU_FAMILY else glorot_uniform
