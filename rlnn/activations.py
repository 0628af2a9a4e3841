"""Elementwise activation functions, their derivatives, and a stable softmax.

Every activation ``y = f(x)`` here has a derivative that can be written in
terms of its *output* ``y`` alone (``tanh' = 1 - y^2``, ``sigmoid' = y(1-y)``,
``relu' = [y > 0]`` ...).  The MLP therefore only needs the post-activation
arrays it keeps anyway to run backprop; no pre-activation has to be re-read.

Each activation is an :class:`Activation` object::

    act = activations.get("tanh")
    y = act(x)                      # same as act.f(x)
    act.f(x, out=buf)               # writes into buf (buf may be x itself)
    act.df(x)                       # f'(x)
    act.df_from_output(y)           # f'(x) from y = f(x), cheaper
    act.backprop(dy, y, out=buf)    # dL/dx = dL/dy * f'(x), the chain rule step
    k = act.kernel(buf); k(x, buf)  # f for arrays shaped like buf, set up once (the MLP's layers)

Arrays keep their dtype (float32 in, float32 out).  ``out=`` may alias the
input for ``f`` (the MLP's acting path activates in place).

Available names: see :data:`NAMES`.
"""
import numpy as np

__all__ = [
    "Activation", "NAMES", "get",
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
    "softmax", "log_softmax",
]


def _cached(cache, key, make, *args):
    """cache[key], made by make(*args) on first use; the cache is emptied when it holds 64 entries."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= 64:
            cache.clear()
        value = cache[key] = make(*args)
    return value


_SCALARS = {}


def _scalar(like, value):
    # A Python float combined with a float32 array costs a conversion on every
    # ufunc call (as much as the ufunc itself on small arrays); a typed scalar does not.
    # Making one costs about a quarter of that, so each (dtype, value) is made once and kept.
    return _cached(_SCALARS, (like.dtype, value), like.dtype.type, value)


_ZEROS = {}


def _zeros_like(x):
    """A shared read-only array of zeros with x's shape and dtype.

    np.maximum(x, 0) takes NumPy's scalar-broadcast path, ~2.5x slower on a
    64x64 float32 array here (3.0 vs 1.1 us) than against a same-shape array.
    """
    return _cached(_ZEROS, (x.shape, x.dtype), _read_only_zeros, x.shape, x.dtype)


def _read_only_zeros(shape, dtype):
    zeros = np.zeros(shape, dtype)
    zeros.flags.writeable = False
    return zeros


def _as_float(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


class Activation:
    """An elementwise nonlinearity y = f(x) with f'(x) expressible through y.

    Subclasses implement ``f(x, out)`` and ``df_from_output(y, out)``.
    ``is_identity`` lets the MLP skip work for an identity layer.
    """

    name = "?"
    is_identity = False
    # df_from_output uses only exactly rounded arithmetic (+, -, *, sign, max, min): its value at an
    # element does not depend on the array around it, so the MLP may compute it for several layers
    # in one call.  (A transcendental such as expm1 may take another code path on another length.)
    df_is_arithmetic = True

    def f(self, x, out=None):
        raise NotImplementedError

    def df_from_output(self, y, out=None):
        """f'(x) computed from y = f(x) (same shape as y)."""
        raise NotImplementedError

    def kernel(self, like):
        """f as a two-argument callable ``k(x, out)`` for arrays of ``like``'s shape and dtype.

        Same values as ``f(x, out=out)``; whatever f needs for that shape is
        prepared once here, not on every call (the MLP binds one per layer
        buffer).  The default is ``f`` itself.
        """
        return self.f

    def df(self, x, out=None):
        """f'(x), computed from the output f(x) by df_from_output.  Accepts scalars."""
        x = _as_float(x)
        if x.ndim == 0:                 # ufuncs with out= need arrays, not scalars
            return self.df(x.reshape(1))[0]
        return self.df_from_output(self.f(x), out=out)

    def backprop(self, dy, y, out):
        """Chain rule through the nonlinearity: dL/dx = dL/dy * f'(x).

        dy, y, out: (batch, n).  ``out`` receives f'(x) first, then is scaled
        by dy in place, so no temporary is allocated.
        """
        self.df_from_output(y, out=out)
        np.multiply(out, dy, out=out)
        return out

    def __call__(self, x, out=None):
        """f(x) for arrays, lists or scalars."""
        x = _as_float(x)
        if x.ndim == 0:
            return self.f(x.reshape(1))[0]
        return self.f(x, out=out)

    def __repr__(self):
        return f"<activation {self.name}>"


class Identity(Activation):
    """f(x) = x,  f'(x) = 1."""

    name = "identity"
    is_identity = True

    def f(self, x, out=None):
        if out is None:
            return np.array(x, copy=True)
        if out is not x:
            np.copyto(out, x)
        return out

    def df_from_output(self, y, out=None):
        if out is None:
            return np.ones_like(y)
        out.fill(1)
        return out

    def backprop(self, dy, y, out):
        np.copyto(out, dy)
        return out


class Sigmoid(Activation):
    """f(x) = 1 / (1 + e^-x),  f'(x) = y (1 - y).

    Stable for any x: with e = exp(-|x|) <= 1 (never overflows),
    f(x) = 1/(1+e) for x >= 0 and e/(1+e) for x < 0, both exact rewrites.
    """

    name = "sigmoid"

    def f(self, x, out=None):
        positive = x >= 0                      # read x before out may overwrite it
        e = np.exp(-np.abs(x))
        one = _scalar(e, 1)
        return np.divide(np.where(positive, one, e), one + e, out=out)

    def df_from_output(self, y, out=None):
        out = np.subtract(_scalar(y, 1), y, out=out)   # 1 - y
        return np.multiply(out, y, out=out)            # y (1 - y)


class Tanh(Activation):
    """f(x) = tanh(x),  f'(x) = 1 - y^2."""

    name = "tanh"
    # The ufunc itself, not a wrapper method: same signature, one Python call
    # less on the per-observation acting path.
    f = staticmethod(np.tanh)

    def df_from_output(self, y, out=None):
        out = np.multiply(y, y, out=out)
        return np.subtract(_scalar(y, 1), out, out=out)


class ReLU(Activation):
    """f(x) = max(x, 0),  f'(x) = [x > 0] = [y > 0] (f'(0) = 0, as torch)."""

    name = "relu"

    def f(self, x, out=None):
        return np.maximum(x, _zeros_like(x), out=out)

    def kernel(self, like):
        return _MaxWith(_zeros_like(like))      # the zeros looked up once, not per call

    def df_from_output(self, y, out=None):
        # [y > 0] in y's dtype: a comparison written into a float buffer costs half of np.sign here.
        if out is None:
            out = np.empty_like(y)
        return np.greater(y, _scalar(y, 0), out=out)


class _MaxWith:
    """``k(x, out) = np.maximum(x, other, out=out)`` for a fixed array ``other`` (ReLU.kernel: a class,
    not a closure, so networks holding one still pickle)."""

    __slots__ = ("other",)

    def __init__(self, other):
        self.other = other

    def __call__(self, x, out):
        return np.maximum(x, self.other, out=out)


class LeakyReLU(Activation):
    """f(x) = x if x > 0 else s x  (s = 0.01),  f'(x) = 1 if x > 0 else s.

    From the output: sign(y) is 1 where x > 0 and 0 or -1 elsewhere, so
    max(sign(y), s) is exactly f'(x) (and f'(0) = s, as torch).
    """

    name = "leaky_relu"

    def __init__(self, slope=0.01):
        self.slope = slope

    def f(self, x, out=None):
        # max(x, s x) == leaky_relu(x) because 0 < s < 1.  s x may go into out
        # unless out is x itself (x is still needed).
        sx = np.multiply(x, _scalar(x, self.slope), out=None if out is x else out)
        return np.maximum(x, sx, out=out)

    def df_from_output(self, y, out=None):
        out = np.sign(y, out=out)
        return np.maximum(out, _scalar(y, self.slope), out=out)


class ELU(Activation):
    """f(x) = x if x > 0 else e^x - 1  (alpha = 1),  f'(x) = 1 if x > 0 else e^x = y + 1.

    From the output: y + 1 > 1 exactly where x > 0, so f'(x) = min(y + 1, 1).
    expm1 is applied to min(x, 0) so large positive x cannot overflow.
    """

    name = "elu"

    def f(self, x, out=None):
        positive = x > 0                       # read x before out may overwrite it
        y = np.expm1(np.minimum(x, _scalar(x, 0)))
        np.copyto(y, x, where=positive)
        if out is None:
            return y
        np.copyto(out, y)
        return out

    def df_from_output(self, y, out=None):
        out = np.add(y, _scalar(y, 1), out=out)
        return np.minimum(out, _scalar(y, 1), out=out)


class Softplus(Activation):
    """f(x) = log(1 + e^x),  f'(x) = sigmoid(x) = 1 - e^-y.

    logaddexp(0, x) = max(x, 0) + log1p(e^-|x|) never overflows; -expm1(-y)
    keeps full precision when y (and so f'(x)) is tiny.
    """

    name = "softplus"
    df_is_arithmetic = False            # expm1

    def f(self, x, out=None):
        return np.logaddexp(_scalar(x, 0), x, out=out)

    def df_from_output(self, y, out=None):
        out = np.negative(y, out=out)
        out = np.expm1(out, out=out)
        return np.negative(out, out=out)


identity = Identity()
sigmoid = Sigmoid()
tanh = Tanh()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
softplus = Softplus()

_REGISTRY = {a.name: a for a in (identity, sigmoid, tanh, relu, leaky_relu, elu, softplus)}
NAMES = tuple(_REGISTRY)
"""All activation names accepted by :func:`get` and ``MLP``."""

RELU_FAMILY = ("relu", "leaky_relu", "elu")
"""Activations for which He initialisation is the default."""


def get(name):
    """The :class:`Activation` registered under ``name`` (an Activation passes through).

    Raises ValueError listing the allowed names for an unknown one.
    """
    if isinstance(name, Activation):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; allowed: {', '.join(NAMES)}") from None


def softmax(x, axis=-1):
    """p_i = e^{x_i - m} / sum_j e^{x_j - m} with m = max_j x_j.

    Subtracting the max leaves p unchanged and keeps every exponent <= 0, so
    logits of +-1e3 neither overflow nor produce nan.
    """
    x = _as_float(x)
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    e = np.exp(shifted, out=shifted)
    return np.divide(e, np.add.reduce(e, axis=axis, keepdims=True), out=e)


def log_softmax(x, axis=-1):
    """log p_i = (x_i - m) - log sum_j e^{x_j - m},  m = max_j x_j (stable)."""
    x = _as_float(x)
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    log_sum = np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
    return np.subtract(shifted, log_sum, out=shifted)
