"""Optimizers following ``torch.optim``'s update rules, on one flat parameter vector.

Usage::

    opt = optim.Adam(net.flat_params, net.flat_grads, lr=1e-3)
    net.zero_grad(); net.forward(x); net.backward(dy); opt.step()

``params`` and ``grads`` are arrays of the same shape and dtype (normally the
MLP's flat vectors; any array pair works, e.g. a learnable log-std vector).
Each step is a handful of in-place ufunc calls over the whole vector, using
preallocated scratch buffers, with no per-tensor Python loop.  The state
(moments, step count) keeps the parameters' dtype.

Notation per step t (1-based), g = gradient, theta = parameters, lr = ``opt.lr``
(a plain attribute, so a schedule can set it before each step).
With ``weight_decay`` lambda != 0, every optimizer first uses g <- g + lambda theta
(L2 penalty, as torch; not decoupled AdamW decay).

``state_dict()`` returns plain scalars and array copies; ``load_state_dict()``
copies them back, so a resumed run continues bit for bit.

``register_step_pre_hook(fn)`` (as torch) has ``fn(opt)`` called at the start of
every ``step()``, before the parameters change, e.g. to snapshot them for an
update-size statistic; ``handle.remove()`` unregisters it.
"""
import math

import numpy as np

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSProp", "Adam", "HookHandle", "clip_grad_norm"]


class HookHandle:
    """Returned by ``register_step_pre_hook``; ``remove()`` unregisters the hook (twice is harmless)."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Optimizer:
    """Shared plumbing: argument checks, scratch buffers, step hooks, state (de)serialisation.

    Subclasses list their hyperparameters in ``_hyper`` and their per-element
    state arrays in ``_buffers``; both are saved by ``state_dict()``.  Their
    ``step()`` starts with ``if self._step_pre_hooks: self._call_step_pre_hooks()``:
    without hooks that is one test of an empty dict.
    """

    _hyper = ("lr", "weight_decay")
    _buffers = ()

    def __init__(self, params, grads, lr, weight_decay=0.0):
        if not isinstance(params, np.ndarray) or not isinstance(grads, np.ndarray):
            raise TypeError("params and grads must be numpy arrays, e.g. "
                            "net.flat_params and net.flat_grads")
        if params.shape != grads.shape or params.dtype != grads.dtype:
            raise ValueError(f"params {params.dtype}{params.shape} and grads "
                             f"{grads.dtype}{grads.shape} must match in shape and dtype")
        if params.dtype.kind != "f" or not params.flags.writeable:
            raise ValueError("params must be a writeable floating point array")
        _check(lr >= 0, "lr", lr)
        _check(weight_decay >= 0, "weight_decay", weight_decay)
        self.params, self.grads = params, grads
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.step_count = 0
        self._g = np.zeros_like(params)          # effective gradient scratch
        self._tmp = np.zeros_like(params)        # second scratch
        self._step_pre_hooks = {}                # key -> fn(optimizer), in registration order
        self._next_hook_key = 0

    def zero_grad(self):
        self.grads.fill(0)

    def register_step_pre_hook(self, fn):
        """Call ``fn(self)`` at the start of every ``step()``; returns a handle with ``.remove()``."""
        key = self._next_hook_key
        self._next_hook_key += 1
        self._step_pre_hooks[key] = fn
        return HookHandle(self._step_pre_hooks, key)

    def _call_step_pre_hooks(self):
        for fn in list(self._step_pre_hooks.values()):   # a hook may remove itself
            fn(self)

    def _decayed_grad(self):
        """g + lambda theta in scratch, or the gradient array itself (never modified)."""
        if self.weight_decay == 0:
            return self.grads
        np.multiply(self.params, self.weight_decay, out=self._g)
        np.add(self._g, self.grads, out=self._g)
        return self._g

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """{"type", "step", hyperparameters..., state arrays (copies)}."""
        state = {"type": type(self).__name__, "step": self.step_count}
        for name in self._hyper:
            value = getattr(self, name)
            state[name] = list(value) if isinstance(value, tuple) else value
        for name in self._buffers:
            state[name] = getattr(self, name).copy()
        return state

    def load_state_dict(self, state):
        """Restore step count, hyperparameters and state arrays (copied in place)."""
        kind = state.get("type", type(self).__name__)
        if kind != type(self).__name__:
            raise ValueError(f"optimizer state is for {kind}, not {type(self).__name__}")
        missing = [k for k in ("step",) + self._hyper + self._buffers if k not in state]
        if missing:
            raise ValueError(f"optimizer state is missing {missing}")
        for name in self._buffers:
            value, mine = np.asarray(state[name]), getattr(self, name)
            if value.shape != mine.shape:
                raise ValueError(f"optimizer state {name!r} has shape {value.shape}, "
                                 f"expected {mine.shape}")
        for name in self._buffers:
            np.copyto(getattr(self, name), state[name], casting="same_kind")
        for name in self._hyper:
            current = getattr(self, name)
            value = state[name]
            if isinstance(current, tuple):
                value = tuple(float(v) for v in value)
            elif isinstance(current, bool):
                value = bool(value)
            else:
                value = float(value)
            setattr(self, name, value)
        self.step_count = int(state["step"])

    def __repr__(self):
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({hyper})"


def _check(ok, name, value):
    if not ok:
        raise ValueError(f"invalid {name}: {value!r}")


class SGD(Optimizer):
    """SGD with optional momentum mu, dampening d and Nesterov (torch.optim.SGD)::

        b_1 = g;   b_t = mu b_{t-1} + (1 - d) g          (if mu != 0)
        g <- g + mu b_t  (Nesterov)   or   g <- b_t
        theta <- theta - lr g
    """

    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")
    _buffers = ("momentum_buffer",)

    def __init__(self, params, grads, lr, momentum=0.0, dampening=0.0,
                 nesterov=False, weight_decay=0.0):
        super().__init__(params, grads, lr, weight_decay)
        _check(momentum >= 0, "momentum", momentum)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov = bool(nesterov)
        self.momentum_buffer = np.zeros_like(params)

    def step(self):
        if self._step_pre_hooks:
            self._call_step_pre_hooks()
        g = self._decayed_grad()
        self.step_count += 1
        if self.momentum != 0:
            b = self.momentum_buffer
            if self.step_count == 1:
                np.copyto(b, g)                                   # b_1 = g
            else:
                np.multiply(b, self.momentum, out=b)              # mu b
                np.multiply(g, 1.0 - self.dampening, out=self._tmp)
                np.add(b, self._tmp, out=b)                       # + (1 - d) g
            if self.nesterov:
                np.multiply(b, self.momentum, out=self._tmp)
                np.add(g, self._tmp, out=self._tmp)               # g + mu b
                g = self._tmp
            else:
                g = b
        np.multiply(g, self.lr, out=self._tmp)
        np.subtract(self.params, self._tmp, out=self.params)


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad)::

        clr = lr / (1 + (t - 1) lr_decay)
        s_t = s_{t-1} + g^2                     (s_0 = initial_accumulator_value)
        theta <- theta - clr g / (sqrt(s_t) + eps)
    """

    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _buffers = ("sum",)

    def __init__(self, params, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, grads, lr, weight_decay)
        _check(lr_decay >= 0, "lr_decay", lr_decay)
        _check(initial_accumulator_value >= 0, "initial_accumulator_value",
               initial_accumulator_value)
        _check(eps >= 0, "eps", eps)
        self.lr_decay, self.eps = float(lr_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.sum = np.full_like(params, initial_accumulator_value)

    def step(self):
        if self._step_pre_hooks:
            self._call_step_pre_hooks()
        g = self._decayed_grad()
        self.step_count += 1
        clr = self.lr / (1 + (self.step_count - 1) * self.lr_decay)
        np.multiply(g, g, out=self._tmp)
        np.add(self.sum, self._tmp, out=self.sum)                 # s += g^2
        np.sqrt(self.sum, out=self._tmp)
        np.add(self._tmp, self.eps, out=self._tmp)                # sqrt(s) + eps
        np.divide(g, self._tmp, out=self._tmp)
        np.multiply(self._tmp, clr, out=self._tmp)
        np.subtract(self.params, self._tmp, out=self.params)


class RMSProp(Optimizer):
    """RMSProp (torch.optim.RMSprop)::

        v_t = alpha v_{t-1} + (1 - alpha) g^2
        centered:  m_t = alpha m_{t-1} + (1 - alpha) g;  v~ = v_t - m_t^2,  else v~ = v_t
        momentum mu > 0:  b_t = mu b_{t-1} + g / (sqrt(v~) + eps);  theta <- theta - lr b_t
        otherwise:        theta <- theta - lr g / (sqrt(v~) + eps)
    """

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _buffers = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, grads, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, grads, lr, weight_decay)
        _check(0 <= alpha <= 1, "alpha", alpha)
        _check(eps >= 0, "eps", eps)
        _check(momentum >= 0, "momentum", momentum)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.centered = bool(centered)
        self.square_avg = np.zeros_like(params)
        self.grad_avg = np.zeros_like(params)
        self.momentum_buffer = np.zeros_like(params)

    def step(self):
        if self._step_pre_hooks:
            self._call_step_pre_hooks()
        g = self._decayed_grad()
        self.step_count += 1
        v, tmp = self.square_avg, self._tmp
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1.0 - self.alpha, out=tmp)
        np.multiply(v, self.alpha, out=v)
        np.add(v, tmp, out=v)                                     # v = a v + (1-a) g^2
        if self.centered:
            m = self.grad_avg
            np.multiply(m, self.alpha, out=m)
            np.multiply(g, 1.0 - self.alpha, out=tmp)
            np.add(m, tmp, out=m)                                 # m = a m + (1-a) g
            np.multiply(m, m, out=tmp)
            np.subtract(v, tmp, out=tmp)                          # v - m^2
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        np.add(tmp, self.eps, out=tmp)                            # sqrt(v~) + eps
        np.divide(g, tmp, out=tmp)
        if self.momentum > 0:
            b = self.momentum_buffer
            np.multiply(b, self.momentum, out=b)
            np.add(b, tmp, out=b)                                 # b = mu b + g/(...)
            np.multiply(b, self.lr, out=tmp)
        else:
            np.multiply(tmp, self.lr, out=tmp)
        np.subtract(self.params, tmp, out=self.params)


class Adam(Optimizer):
    """Adam with bias correction (torch.optim.Adam, optionally AMSGrad)::

        m_t = b1 m_{t-1} + (1 - b1) g
        v_t = b2 v_{t-1} + (1 - b2) g^2
        m^ = m_t / (1 - b1^t),   v^ = v_t / (1 - b2^t)
        theta <- theta - lr m^ / (sqrt(v^) + eps)
        AMSGrad: v_max = max(v_max, v_t) replaces v_t in v^.

    The uncorrected version (as on the lecture slide) uses m_t and v_t
    directly.  Both start at 0, so early on they are biased toward 0: at
    t = 1, m_1 = (1 - b1) g and v_1 = (1 - b2) g^2, so the uncorrected step is
    lr (1 - b1)/sqrt(1 - b2) sign(g) ~ 3.16 lr sign(g) for the default betas,
    while the corrected step is lr g/(|g| + eps) ~ lr sign(g).  The factors
    1/(1 - b^t) -> 1 as t grows, so the two agree after a few thousand steps.
    eps is added after the square root of v^, as torch does.
    """

    _hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, amsgrad=False):
        super().__init__(params, grads, lr, weight_decay)
        beta1, beta2 = betas
        _check(0 <= beta1 < 1, "beta1", beta1)
        _check(0 <= beta2 < 1, "beta2", beta2)
        _check(eps >= 0, "eps", eps)
        self.betas, self.eps = (float(beta1), float(beta2)), float(eps)
        self.amsgrad = bool(amsgrad)
        self.exp_avg = np.zeros_like(params)
        self.exp_avg_sq = np.zeros_like(params)
        # Only used with amsgrad; kept (size 0 otherwise) so state_dict is uniform.
        self.max_exp_avg_sq = np.zeros_like(params) if amsgrad else np.zeros(0, params.dtype)
        self._typed = (None, None)

    def _typed_betas(self):
        """(b1, 1 - b1, b2, 1 - b2) as scalars of the parameters' dtype, made once per ``betas``
        (with float32 arrays a Python float costs a conversion per ufunc call)."""
        if self._typed[0] is not self.betas:
            (beta1, beta2), c = self.betas, self.params.dtype.type
            self._typed = (self.betas, (c(beta1), c(1.0 - beta1), c(beta2), c(1.0 - beta2)))
        return self._typed[1]

    def step(self):
        if self._step_pre_hooks:
            self._call_step_pre_hooks()
        g = self.grads if self.weight_decay == 0 else self._decayed_grad()
        self.step_count += 1
        (beta1, beta2), t = self.betas, self.step_count
        b1, one_minus_b1, b2, one_minus_b2 = self._typed_betas()
        m, v, tmp = self.exp_avg, self.exp_avg_sq, self._tmp
        np.multiply(m, b1, out=m)
        np.multiply(g, one_minus_b1, out=tmp)
        np.add(m, tmp, out=m)                                     # m = b1 m + (1-b1) g
        np.multiply(v, b2, out=v)
        np.multiply(g, one_minus_b2, out=tmp)
        np.multiply(tmp, g, out=tmp)
        np.add(v, tmp, out=v)                                     # v = b2 v + (1-b2) g^2
        if self.amsgrad:
            np.maximum(self.max_exp_avg_sq, v, out=self.max_exp_avg_sq)
            v = self.max_exp_avg_sq
        # lr m^ / (sqrt(v^) + eps) with m^ = m / bc1, sqrt(v^) = sqrt(v) / sqrt(bc2) equals
        # (lr sqrt(bc2) / bc1) m / (sqrt(v) + eps sqrt(bc2)): the same value with one ufunc fewer.
        sqrt_bc2 = math.sqrt(1.0 - beta2 ** t)
        step_size = self.lr * sqrt_bc2 / (1.0 - beta1 ** t)
        c = self.params.dtype.type
        np.sqrt(v, out=tmp)
        np.add(tmp, c(self.eps * sqrt_bc2), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, c(step_size), out=tmp)
        np.subtract(self.params, tmp, out=self.params)


def clip_grad_norm(grads, max_norm):
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    grads: one array (e.g. net.flat_grads) or a list of arrays.  As
    torch.nn.utils.clip_grad_norm_: norm = sqrt(sum g^2) over all arrays; if
    max_norm / (norm + 1e-6) < 1 every array is multiplied by that factor.
    max_norm None or inf only measures.  Returns the norm before clipping (float).
    """
    if isinstance(grads, np.ndarray):       # one array (the common case): no list, no generator
        arrays = [grads]
        flat = grads.ravel()
        norm = math.sqrt(float(flat.dot(flat)))
    else:
        arrays = list(grads)
        norm = math.sqrt(sum(float(np.dot(a.ravel(), a.ravel())) for a in arrays))
    if max_norm is None or math.isinf(max_norm):
        return norm
    if max_norm < 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm!r}")
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for a in arrays:
            np.multiply(a, coef, out=a, casting="same_kind")
    return norm
