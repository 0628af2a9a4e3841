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
  size and reused; matmuls and ufuncs write into them with ``out=``.  The
  views a pass needs (W_t^T, leading rows, each layer's activation bound to
  its buffer) are made once with them, so a pass is the ufunc and dot calls
  of the equations above and little else.  Matmuls are ``ndarray.dot``
  calls: the same BLAS call as ``np.dot``, without its Python dispatch step.
"""
import numpy as np

from . import activations as _activations
from . import init as _init

__all__ = ["MLP"]

_MAX_CACHED_BATCH_SIZES = 8
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Workspace:
    """Preallocated buffers for one batch size B (reused across calls), and the
    per-layer tuples that forward() and backward() walk, so a call does no
    indexing, slicing or view making of its own.

    Hidden layers of one width keep their h_t in one (T-1, B, n) block and their
    dL/dz_t in another: backward then computes g'(z_t) of all of them in one
    call on the block instead of one call per layer (elementwise, so the values
    are the same).
    """

    def __init__(self, batch, sizes, acts, dtype, params, grads, scratch):
        T = len(sizes) - 1
        self.batch = batch
        self.x = np.empty((batch, sizes[0]), dtype)           # copy of the input
        self.z = [np.empty((batch, sizes[t + 1]), dtype) for t in range(T)]
        hidden = sizes[1:-1]
        stack = (T > 1 and len(set(hidden)) == 1 and not acts[0].is_identity
                 and acts[0].df_is_arithmetic)
        self.h_hidden = np.empty((T - 1, batch, hidden[0]), dtype) if stack else None
        self.dz_hidden = np.empty_like(self.h_hidden) if stack else None
        # An identity layer's output is its pre-activation: share the buffer.
        self.h = [z if acts[t].is_identity else self.h_hidden[t] if stack and t < T - 1 else np.empty_like(z)
                  for t, z in enumerate(self.z)]
        self.dz = [self.dz_hidden[t] if stack and t < T - 1 else np.empty_like(z)
                   for t, z in enumerate(self.z)]
        self.dh = [np.empty((batch, sizes[t]), dtype) for t in range(T)]  # dL/dh_{t-1}
        self.ones = np.ones(batch, dtype)                      # for 1^T dL/dz
        # forward, t = 1..T: (h_{t-1}, W_t, b_t, z_t, g_t bound to the layer's buffer or None, h_t)
        inputs = [self.x] + self.h[:-1]
        self.forward_layers = [
            (inputs[t], params[2 * t], params[2 * t + 1], self.z[t],
             None if acts[t].is_identity else acts[t].kernel(self.h[t]), self.h[t])
            for t in range(T)]
        self._acts, self._params, self._grads, self._scratch = acts, params, grads, scratch
        self._plans = {}

    def backward_plan(self, rows, input_grad, accumulate):
        """(hidden blocks or None, per-layer tuples for t = T..1) of a backward through the first
        ``rows`` rows (leading rows of C-ordered buffers: contiguous views), made once per key."""
        key = (rows, input_grad, accumulate)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 8:
                self._plans.clear()
            plan = self._plans[key] = self._make_plan(rows, input_grad, accumulate)
        return plan

    def _make_plan(self, n, input_grad, accumulate):
        T, acts = len(self.z), self._acts
        grads = self._scratch if accumulate else self._grads
        inputs = [self.x] + self.h[:-1]
        stacked = None
        if self.h_hidden is not None:
            stacked = (self.h_hidden[:, :n], self.dz_hidden[:, :n])
        layers = []
        for t in range(T - 1, -1, -1):
            if acts[t].is_identity:
                how = _IDENTITY
            elif stacked is not None and t < T - 1:
                how = _G_PRIME_READY
            else:
                how = _BACKPROP
            dh = self.dh[t][:n] if t > 0 or input_grad else None
            layers.append((how, acts[t], self.h[t][:n], self.dz[t][:n], inputs[t][:n].T,
                           self._params[2 * t].T, grads[2 * t], grads[2 * t + 1], self.ones[:n], dh))
        return stacked, layers


# How backward gets dL/dz_t from dL/dh_t (see MLP.backward).
_IDENTITY, _G_PRIME_READY, _BACKPROP = "identity", "g' ready", "backprop"


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
        self._predict_layers = {}                        # batch size -> predict()'s buffers
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
            z = vec[t + 1][:-1]
            self._chain.append((vec[t], wb, z, None if act.is_identity else act.kernel(z)))

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
            ws = _Workspace(batch, self._sizes, self._acts, self.dtype, self.params, self.grads,
                            self._scratch)
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
        ws = self._workspaces.get(x.shape[0]) or self._workspace(x.shape[0])
        np.copyto(ws.x, x, casting="same_kind")
        for h_prev, W, b, z, g, h in ws.forward_layers:
            h_prev.dot(W, out=z)                # z_t = h_{t-1} W_t
            np.add(z, b, out=z)                 #     + b_t
            if g is not None:
                g(z, h)                         # h_t = g(z_t)  (identity: h_t is z_t)
        self._last = ws
        return h.copy()

    def predict(self, x):
        """Forward pass without caching: the acting path.

        x: (n_0,) -> (n_T,), or (B, n_0) -> (B, n_T).  Never touches the
        training workspaces, so it is safe to call between forward() and
        backward().  Returns a fresh array.  It computes in small per-network
        buffers (one set per batch size): do not call it on the same network
        from several threads at once.
        """
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self._sizes[0]:
            raise ValueError(f"predict expects x of shape ({self._sizes[0]},) or "
                             f"(batch, {self._sizes[0]}), got {x.shape}")
        if x.ndim == 1:
            return self._predict_one(x)
        h = x if x.dtype == self.dtype else x.astype(self.dtype)
        layers = self._predict_layers.get(len(h)) or self._predict_buffers(len(h))
        for W, b, z, g in layers:
            h.dot(W, out=z)                     # z_t = h_{t-1} W_t  (into a buffer: x is never modified)
            np.add(z, b, out=z)                 #     + b_t
            if g is not None:
                g(z, z)                         # h_t = g(z_t), in place
            h = z
        return h.copy()

    def _predict_buffers(self, batch):
        """predict()'s per-layer (W_t, b_t, buffer, g_t bound to it) for ``batch`` rows, made once."""
        if len(self._predict_layers) >= _MAX_CACHED_BATCH_SIZES:
            del self._predict_layers[next(iter(self._predict_layers))]
        layers = []
        for t, act in enumerate(self._acts):
            z = np.empty((batch, self._sizes[t + 1]), self.dtype)
            layers.append((self.params[2 * t], self.params[2 * t + 1], z, None if act.is_identity else act.kernel(z)))
        self._predict_layers[batch] = layers
        return layers

    def _predict_one(self, x):
        """predict() for a single observation using the [W; b] views (see _build)."""
        np.copyto(self._x_one, x, casting="same_kind")     # also the one dtype cast
        for h_one, wb, z, f in self._chain:      # z is the h_t part of [h_t, 1]
            h_one.dot(wb, out=z)                 # z_t = [h_{t-1}, 1] [W_t; b_t]
            if f is not None:
                f(z, z)                          # h_t = g(z_t), in place
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
        if dy.shape != (n, self._sizes[-1]):
            raise ValueError(f"backward expects dy of shape {(n, self._sizes[-1])} (the last forward's "
                             f"output shape{'' if rows is None else ', first rows'}), got {dy.shape}")
        if dy.dtype != self.dtype:
            dy = dy.astype(self.dtype)
        # Into self.grads, or into the scratch vector that is then added (accumulate).
        stacked, layers = ws.backward_plan(int(n), input_grad, accumulate)
        if stacked is not None:                 # g'(z_t) of all hidden layers at once (see _Workspace)
            h_hidden, dz_hidden = stacked
            self._acts[0].df_from_output(h_hidden, out=dz_hidden)
        g = dy                                  # dL/dh_t, from t = T down
        for how, act, h, dz, h_prev_T, W_T, dW, db, ones, dh in layers:
            if how is _IDENTITY:
                dz = g                          # dL/dz_t = dL/dh_t
            elif how is _G_PRIME_READY:
                np.multiply(dz, g, out=dz)      # dL/dz_t = g'(z_t) * dL/dh_t  (dz held g'(z_t))
            else:
                act.backprop(g, h, out=dz)      # dL/dz_t = dL/dh_t * g'(z_t)
            h_prev_T.dot(dz, out=dW)            # dL/dW_t = h_{t-1}^T dL/dz_t
            ones.dot(dz, out=db)                # dL/db_t = 1^T dL/dz_t
            if dh is None:                      # t = 1 and no input_grad: dL/dx is not needed
                g = None
                break
            dz.dot(W_T, out=dh)                 # dL/dh_{t-1} = dL/dz_t W_t^T
            g = dh
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
