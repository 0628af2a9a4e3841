"""A multilayer perceptron with hand-written backprop.

Layer t computes, for a batch of row vectors h_{t-1} (B, n_{t-1}):

    z_t = h_{t-1} W_t + b_t        W_t: (n_{t-1}, n_t),  b_t: (n_t,)
    h_t = g_t(z_t)                 g = activation (output_activation for the last layer)

Backward, given dL/dh_T (B, n_T), for t = T..1 (the chain rule, line by line):

    dL/dz_t     = dL/dh_t * g_t'(z_t)          elementwise; g' from h_t (see activations)
    dL/dW_t     = h_{t-1}^T dL/dz_t            (n_{t-1}, n_t), summed over the batch
    dL/db_t     = 1^T dL/dz_t                  (n_t,)
    dL/dh_{t-1} = dL/dz_t W_t^T                (B, n_{t-1});  t = 1 gives dL/dx

Memory layout (why it is fast for tiny nets, where Python overhead dominates):

* All parameters live in one contiguous vector ``flat_params`` ordered
  W_1, b_1, W_2, b_2, ...; ``params`` holds reshaped *views* into it.  An
  optimizer updates every parameter with a handful of vector ufuncs, and
  copy/soft-update of target networks is one or three ufunc calls.
* ``flat_grads`` mirrors it.  backward() computes the batch gradient into a
  scratch vector with the same layout and accumulates with a single add.
* Work buffers (z_t, h_t, dL/dz_t, dL/dh_t) are preallocated once per batch
  size and reused; matmuls and ufuncs write into them with ``out=``.
"""
import numpy as np

from . import activations as _activations
from . import init as _init

__all__ = ["MLP"]

_MAX_CACHED_BATCH_SIZES = 8
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Workspace:
    """Preallocated buffers for one batch size B (reused across calls)."""

    def __init__(self, batch, sizes, acts, dtype):
        layers = range(len(sizes) - 1)
        self.batch = batch
        self.x = np.empty((batch, sizes[0]), dtype)           # copy of the input
        self.z = [np.empty((batch, sizes[t + 1]), dtype) for t in layers]
        # An identity layer's output is its pre-activation: share the buffer.
        self.h = [z if acts[t].is_identity else np.empty_like(z)
                  for t, z in zip(layers, self.z)]
        self.dz = [np.empty_like(z) for z in self.z]
        self.dh = [np.empty((batch, sizes[t]), dtype) for t in layers]  # dL/dh_{t-1}
        self.ones = np.ones(batch, dtype)                      # for 1^T dL/dz


class MLP:
    """Fully connected network h_t = g(h_{t-1} W_t + b_t) on batch rows.

    Args:
        sizes: layer widths, e.g. ``[4, 64, 64, 2]`` (input, hidden..., output).
        activation: hidden-layer activation name (see ``activations.NAMES``).
        output_activation: last-layer activation name, ``"identity"`` by default.
        seed: int or ``np.random.Generator`` for the weight initialisation.
        dtype: ``np.float32`` or ``np.float64``; everything stays in it.
        init: None (He uniform for relu/leaky_relu/elu, Glorot uniform
            otherwise), a name from ``init.NAMES`` or a callable
            ``(fan_in, fan_out, rng, dtype) -> (fan_in, fan_out) array``.
            Biases start at zero.

    Attributes:
        params / grads: ``[W1, b1, W2, b2, ...]`` views into ``flat_params`` /
            ``flat_grads``; W_t is (fan_in, fan_out), b_t is (fan_out,).
        weights / biases: the W_t and b_t views alone.
        sizes, activation, output_activation (names), dtype, num_layers.
        preactivations, activations_cache, layer_inputs: from the last
            forward(), per layer, the z_t, the h_t (h_T is the output) and the
            input h_{t-1} (the first is x), as (B, n) arrays.  They are work
            buffers, overwritten by the next forward at the same batch size:
            copy them to keep them.  Meant for per-layer statistics, e.g. the
            dead ReLU fraction ``(h == 0).mean()`` or saturated tanh
            ``(abs(h) > 0.99).mean()``.
    """

    def __init__(self, sizes, activation="tanh", output_activation="identity",
                 seed=0, dtype=np.float64, init=None):
        self._build(sizes, activation, output_activation, dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        init_fn = _init.default_for(activation) if init is None else _init.get(init)
        for w in self.weights:
            value = np.asarray(init_fn(w.shape[0], w.shape[1], rng, self.dtype))
            if value.shape != w.shape:
                raise ValueError(f"init returned shape {value.shape}, expected {w.shape}")
            w[...] = value

    def _build(self, sizes, activation, output_activation, dtype):
        """Allocate the flat buffers and views; weights left at zero."""
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in sizes):
            raise ValueError(f"sizes must be >= 2 positive ints, got {sizes!r}")
        self._sizes = [int(n) for n in sizes]
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        hidden, output = _activations.get(activation), _activations.get(output_activation)
        self.activation, self.output_activation = hidden.name, output.name
        self.num_layers = len(sizes) - 1
        self._acts = [hidden] * (self.num_layers - 1) + [output]

        shapes = []
        for fan_in, fan_out in zip(self._sizes[:-1], self._sizes[1:]):
            shapes += [(fan_in, fan_out), (fan_out,)]
        total = sum(int(np.prod(s)) for s in shapes)
        self.flat_params = np.zeros(total, dtype)
        self.flat_grads = np.zeros(total, dtype)
        self._flat_scratch = np.zeros(total, dtype)     # this batch's gradient
        self.params = _views(self.flat_params, shapes)
        self.grads = _views(self.flat_grads, shapes)
        self._scratch = _views(self._flat_scratch, shapes)
        self._workspaces = {}
        self._last = None                                # workspace of the last forward
        self._build_acting_path()

    def _build_acting_path(self):
        """Buffers and views for predict() on one observation.

        b_t is stored right after W_t, so [W_t; b_t] is a contiguous
        (n_{t-1} + 1, n_t) view of flat_params, and with a buffer holding
        [h_{t-1}, 1] the whole affine map z_t = [h_{t-1}, 1] [W_t; b_t] is a
        single dot: no separate bias add, no allocation until the final copy.
        """
        vec = [np.ones(n + 1, self.dtype) for n in self._sizes]    # [h_t, 1] buffers
        self._x_one = vec[0][:-1]
        self._chain, offset = [], 0
        for t, act in enumerate(self._acts):
            fan_in, fan_out = self._sizes[t], self._sizes[t + 1]
            n = (fan_in + 1) * fan_out
            wb = self.flat_params[offset:offset + n].reshape(fan_in + 1, fan_out)
            offset += n
            self._chain.append((vec[t], wb, vec[t + 1][:-1],
                                None if act.is_identity else act.f))

    # ------------------------------------------------------------------ views
    @property
    def sizes(self):
        return list(self._sizes)

    @property
    def weights(self):
        return self.params[0::2]

    @property
    def biases(self):
        return self.params[1::2]

    def num_params(self):
        """Total number of scalars: sum_t (n_{t-1} n_t + n_t)."""
        return self.flat_params.size

    @property
    def preactivations(self):
        return [] if self._last is None else list(self._last.z)

    @property
    def activations_cache(self):
        return [] if self._last is None else list(self._last.h)

    @property
    def layer_inputs(self):
        """[x, h_1, ..., h_{T-1}]: what each layer received in the last forward()."""
        return [] if self._last is None else [self._last.x] + list(self._last.h[:-1])

    def __repr__(self):
        return (f"MLP(sizes={self._sizes}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, dtype={self.dtype.name})")

    # ---------------------------------------------------------------- forward
    def _workspace(self, batch):
        ws = self._workspaces.get(batch)
        if ws is None:
            if len(self._workspaces) >= _MAX_CACHED_BATCH_SIZES:
                # Evict the oldest size; self._last keeps its own reference.
                del self._workspaces[next(iter(self._workspaces))]
            ws = _Workspace(batch, self._sizes, self._acts, self.dtype)
            self._workspaces[batch] = ws
        return ws

    def forward(self, x):
        """Output h_T (B, n_T) for input x (B, n_0), caching what backward needs.

        x is copied (and cast once to ``dtype``) into the workspace, so later
        changes to x do not corrupt the gradient.  Returns a fresh array.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self._sizes[0]:
            raise ValueError(f"forward expects x of shape (batch, {self._sizes[0]}), "
                             f"got {x.shape}")
        ws = self._workspace(x.shape[0])
        np.copyto(ws.x, x, casting="same_kind")
        h = ws.x
        for t, act in enumerate(self._acts):
            W, b = self.params[2 * t], self.params[2 * t + 1]
            z = ws.z[t]
            np.dot(h, W, out=z)                 # z_t = h_{t-1} W_t
            np.add(z, b, out=z)                 #     + b_t
            h = z if act.is_identity else act.f(z, out=ws.h[t])   # h_t = g(z_t)
        self._last = ws
        return h.copy()

    def predict(self, x):
        """Forward pass without caching: the acting path.

        x: (n_0,) -> (n_T,), or (B, n_0) -> (B, n_T).  Never touches the
        training workspaces, so it is safe to call between forward() and
        backward().  Returns a fresh array.  The single-observation path
        reuses small per-network buffers: do not call it on the same network
        from several threads at once.
        """
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self._sizes[0]:
            raise ValueError(f"predict expects x of shape ({self._sizes[0]},) or "
                             f"(batch, {self._sizes[0]}), got {x.shape}")
        if x.ndim == 1:
            return self._predict_one(x)
        h = x if x.dtype == self.dtype else x.astype(self.dtype)
        params = self.params
        for t, act in enumerate(self._acts):
            h = np.dot(h, params[2 * t])        # a new array: x is never modified
            h += params[2 * t + 1]
            if not act.is_identity:
                act.f(h, out=h)
        return h

    def _predict_one(self, x):
        """predict() for a single observation using the [W; b] views (see _build)."""
        np.copyto(self._x_one, x, casting="same_kind")     # also the one dtype cast
        for h_one, wb, z, f in self._chain:      # z is the h_t part of [h_t, 1]
            np.dot(h_one, wb, out=z)             # z_t = [h_{t-1}, 1] [W_t; b_t]
            if f is not None:
                f(z, out=z)                      # h_t = g(z_t), in place
        return z.copy()

    # --------------------------------------------------------------- backward
    def backward(self, dy, rows=None, input_grad=True, accumulate=True):
        """Backprop dL/dy (B, n_T) from the last forward(); returns dL/dx (B, n_0).

        The parameter gradient is *added* to ``grads`` (call ``zero_grad()``
        first unless you mean to accumulate over several batches);
        ``accumulate=False`` overwrites ``grads`` instead (zero_grad() and an
        add fewer per step).

        rows: backprop only the first ``rows`` rows of the last forward's
            batch; dy is then (rows, n_T) and the other rows count as if
            their dL/dy were zero.  One forward() can so serve rows that are
            in the loss and rows only needed for their outputs (Double DQN
            evaluates Q(s, .) and Q(s', .) in one pass; only Q(s, a) is in the loss).
        input_grad: False skips dL/dx (the first layer's dz W_1^T) and returns None.
        """
        ws = self._last
        if ws is None:
            raise RuntimeError("backward() called before forward(): no cached activations")
        dy = np.asarray(dy)
        n = ws.batch if rows is None else rows
        if not (isinstance(n, (int, np.integer)) and 0 < n <= ws.batch):
            raise ValueError(f"rows must be an int in [1, {ws.batch}] (the last forward's batch), "
                             f"got {rows!r}")
        expected = (n, self._sizes[-1])
        if dy.shape != expected:
            raise ValueError(f"backward expects dy of shape {expected} (the last forward's "
                             f"output shape{'' if rows is None else ', first rows'}), got {dy.shape}")
        if dy.dtype != self.dtype:
            dy = dy.astype(self.dtype)
        if n == ws.batch:
            x, hs, dzs, dhs, ones = ws.x, ws.h, ws.dz, ws.dh, ws.ones
        else:                       # leading rows of C-ordered buffers: contiguous views
            x, ones = ws.x[:n], ws.ones[:n]
            hs, dzs, dhs = [a[:n] for a in ws.h], [a[:n] for a in ws.dz], [a[:n] for a in ws.dh]
        grads = self._scratch if accumulate else self.grads
        g = dy                                              # dL/dh_t
        for t in range(self.num_layers - 1, -1, -1):
            act = self._acts[t]
            dz = g if act.is_identity else act.backprop(g, hs[t], out=dzs[t])
            h_prev = x if t == 0 else hs[t - 1]
            np.dot(h_prev.T, dz, out=grads[2 * t])              # dL/dW_t = h_{t-1}^T dz
            np.dot(ones, dz, out=grads[2 * t + 1])              # dL/db_t = 1^T dz
            if t == 0 and not input_grad:
                g = None
                break
            np.dot(dz, self.params[2 * t].T, out=dhs[t])        # dL/dh_{t-1} = dz W_t^T
            g = dhs[t]
        if accumulate:
            np.add(self.flat_grads, self._flat_scratch, out=self.flat_grads)
        return None if g is None else g.copy()

    def zero_grad(self):
        self.flat_grads.fill(0)

    # ------------------------------------------------ copies / target networks
    def _empty_like(self):
        other = type(self).__new__(type(self))
        other._build(self._sizes, self.activation, self.output_activation, self.dtype)
        return other

    def copy(self):
        """An independent network with equal parameters (gradients zero)."""
        other = self._empty_like()
        np.copyto(other.flat_params, self.flat_params)
        return other

    def _check_compatible(self, other):
        if not isinstance(other, MLP) or other._sizes != self._sizes:
            theirs = other._sizes if isinstance(other, MLP) else type(other).__name__
            raise ValueError(f"network sizes differ: {self._sizes} vs {theirs}")

    def copy_from(self, other):
        """theta <- theta_other (hard target-network update), in place."""
        self._check_compatible(other)
        np.copyto(self.flat_params, other.flat_params, casting="same_kind")

    def soft_update(self, other, tau):
        """Polyak averaging theta <- tau theta_other + (1 - tau) theta, in place."""
        self._check_compatible(other)
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau!r}")
        scratch = self._flat_scratch      # free outside backward(); same size and dtype
        np.multiply(other.flat_params, tau, out=scratch, casting="same_kind")
        np.multiply(self.flat_params, 1.0 - tau, out=self.flat_params, casting="same_kind")
        np.add(self.flat_params, scratch, out=self.flat_params)

    # ---------------------------------------------------------------- state
    def state_dict(self):
        """Plain values: sizes, activation names, dtype name and a copy of flat_params."""
        return {"sizes": list(self._sizes), "activation": self.activation,
                "output_activation": self.output_activation, "dtype": self.dtype.name,
                "flat_params": self.flat_params.copy()}

    def load_state_dict(self, state):
        """Copy parameters from ``state`` (as made by state_dict()), in place.

        Raises ValueError naming the mismatch if the sizes, activations or the
        flat_params shape differ.  A different float dtype is cast.
        """
        for key in ("sizes", "activation", "output_activation"):
            if key in state:
                mine = self._sizes if key == "sizes" else getattr(self, key)
                theirs = [int(n) for n in state[key]] if key == "sizes" else state[key]
                if theirs != mine:
                    raise ValueError(f"state_dict {key} {theirs!r} does not match "
                                     f"this network's {mine!r}")
        if "flat_params" not in state:
            raise ValueError("state_dict has no 'flat_params'")
        flat = np.asarray(state["flat_params"])
        if flat.shape != self.flat_params.shape:
            raise ValueError(f"state_dict flat_params has shape {flat.shape}, expected "
                             f"{self.flat_params.shape} for sizes {self._sizes}")
        if flat.dtype.kind != "f":
            raise ValueError(f"state_dict flat_params must be floating point, got {flat.dtype}")
        np.copyto(self.flat_params, flat, casting="same_kind")

    @classmethod
    def from_state_dict(cls, state, dtype=None):
        """A new network built from a state_dict() (dtype overrides the stored one)."""
        try:
            sizes, act, out_act = state["sizes"], state["activation"], state["output_activation"]
        except KeyError as missing:
            raise ValueError(f"state_dict is missing {missing}") from None
        net = cls.__new__(cls)
        net._build([int(n) for n in sizes], act, out_act,
                   dtype if dtype is not None else state.get("dtype", "float64"))
        net.load_state_dict(state)
        return net


def _views(flat, shapes):
    """Consecutive reshaped views into ``flat`` (no copies)."""
    views, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        views.append(flat[offset:offset + n].reshape(shape))
        offset += n
    return views
