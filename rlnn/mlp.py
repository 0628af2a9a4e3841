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
* Since b_t follows W_t, [W_t; b_t] is a contiguous (n_{t-1} + 1, n_t) view
  of flat_params (and [dW_t; db_t] of flat_grads).  With layer inputs kept
  as [h_{t-1}, 1], the affine map and the gradients of W_t and b_t are one
  dot each: no bias add, no 1^T dL/dz_t (see _Workspace).
* Work buffers (z_t, h_t, dL/dz_t, dL/dh_t) are preallocated once per batch
  size and reused; matmuls and ufuncs write into them with ``out=``.  The
  training buffers hold the batch in columns (h_t^T), so that every
  elementwise call runs on contiguous memory.  The views a pass needs (the
  transposes, leading batch columns, each layer's activation bound to its
  buffer) are made once with them, so a pass is the ufunc and dot calls of
  the equations above and little else.  Matmuls are ``ndarray.dot`` calls:
  the same BLAS call as ``np.dot``, without its Python dispatch step.
"""
import functools

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

    The buffers hold the batch in columns: layer t's input is the C-ordered
    (n_{t-1} + 1, B) buffer [h_{t-1}^T; 1^T] whose last row is ones.  With the
    contiguous views [W_t; b_t] of flat_params and [dW_t; db_t] of the gradient
    vector (b_t is stored right after W_t, see MLP), the bias rides in the dots:

        z_t^T          = [W_t; b_t]^T [h_{t-1}^T; 1^T]   (n_t, B)            no bias add
        [dW_t; db_t]   = [h_{t-1}^T; 1^T] dL/dz_t        (n_{t-1} + 1, n_t)  no 1^T dL/dz_t
        dL/dh_{t-1}^T  = W_t dL/dz_t^T                   (n_{t-1}, B)

    Why columns: h_t^T is then the leading rows of the next layer's buffer, a
    contiguous block, so g, g' and the products run on contiguous memory.  (With
    the batch in rows, h_t would be [h_t, 1] minus a column, a strided view, and
    NumPy ufuncs on it buffer and take ~2x as long, which eats the gain.)  BLAS
    reads the transposes in place.  The output layer is the exception: its z_T
    and h_T are (B, n_T), the layout forward returns and dy comes in, from
    z_T = [h_{T-1}, 1] [W_T; b_T].

    Hidden layers of one width keep their [h_t^T; 1^T] in one (T-1, n+1, B)
    block: backward computes g' of all of them in one call on the block (ones
    rows included, whose values go unused) instead of one call per layer
    (elementwise, so the values are the same).
    """

    def __init__(self, batch, sizes, acts, dtype, params, wb, dwb):
        T = len(sizes) - 1
        self.batch, self.sizes = batch, sizes
        hidden = sizes[1:-1]
        stack = (T > 1 and len(set(hidden)) == 1 and not acts[0].is_identity
                 and acts[0].df_is_arithmetic)
        self.aug_hidden = np.ones((T - 1, hidden[0] + 1, batch), dtype) if stack else None
        # aug[t] = [h_t^T; 1^T], layer t+1's input (aug[0] holds x^T); ones written once, here.
        self.aug = [np.ones((sizes[0] + 1, batch), dtype)] + [
            self.aug_hidden[t] if stack else np.ones((n + 1, batch), dtype) for t, n in enumerate(hidden)]
        self.x_T = self.aug[0][:-1]                              # forward copies x^T here
        # The output layer's z_T and h_T are (B, n_T) C-ordered buffers: the layout forward returns (a
        # plain copy) and dy comes in.  The *_T lists hold their transposes, like the other layers'.
        z_out = np.empty((batch, sizes[-1]), dtype)
        h_out = z_out if acts[-1].is_identity else np.empty_like(z_out)   # identity: h_T is z_T
        self.z_T = [np.empty((n, batch), dtype) for n in hidden] + [z_out.T]
        self.h_T = [a[:-1] for a in self.aug[1:]] + [h_out.T]   # h_t^T: rows of the next layer's input
        # (B, n) views for the properties, made once (stable objects).
        self.x = self.x_T.T
        self.z = [z.T for z in self.z_T[:-1]] + [z_out]
        self.h = [h.T for h in self.h_T[:-1]] + [h_out]
        # forward, t = 1..T: (A, B, z, g_t bound to h or None, h) for z = A B, h = g_t(z).
        self.forward_layers = []
        for t in range(T):
            if t < T - 1:                      # z_t^T = [W_t; b_t]^T [h_{t-1}^T; 1^T]
                a, b, z, h = wb[t].T, self.aug[t], self.z_T[t], self.h_T[t]
            else:                              # z_T = [h_{T-1}, 1] [W_T; b_T]
                a, b, z, h = self.aug[t].T, wb[t], z_out, h_out
            # None only where h_t is z_t; an identity hidden layer copies z_t into the next input.
            self.forward_layers.append((a, b, z, None if h is z else acts[t].kernel(h), h))
        self._acts, self._params, self._dwb = acts, params, dwb
        self.plans = {}

    def backward_plan(self, rows, input_grad, accumulate, param_grads=True):
        """(dy's shape, hidden blocks or None, per-layer tuples for t = T..1) of a backward through the
        first ``rows`` batch columns (None: all), made once per key after checking ``rows``."""
        key = (rows, input_grad, accumulate, param_grads)
        plan = self.plans.get(key)
        if plan is None:
            n = self.batch if rows is None else rows
            if not (isinstance(n, (int, np.integer)) and 0 < n <= self.batch):
                raise ValueError(f"rows must be an int in [1, {self.batch}] (the last forward's batch), "
                                 f"got {rows!r}")
            if len(self.plans) >= 8:
                self.plans.clear()
            plan = self.plans[key] = self._make_plan(int(n), input_grad, accumulate, param_grads)
        return plan

    def _make_plan(self, n, input_grad, accumulate, param_grads=True):
        """The plan's views, and its own dL/dz^T and dL/dh^T buffers, n columns wide (a dot's out=
        must be contiguous, and leading columns of a (m, B) buffer are not)."""
        T, acts, sizes, dtype = len(self.z_T), self._acts, self.sizes, self.z_T[0].dtype
        full = n == self.batch
        cols = (lambda a: a) if full else (lambda a: a[..., :n])
        dwb = self._dwb[accumulate]            # [dW_t; db_t] views of the scratch (accumulate) or grads
        stacked = None
        if self.aug_hidden is not None:        # (g', hidden inputs, g' of them), (T-1, n_hidden + 1, n)
            g_prime = np.empty((T - 1, sizes[1] + 1, n), dtype)
            stacked = (acts[0].df_from_output, cols(self.aug_hidden), g_prime)
        layers = []
        for t in range(T - 1, -1, -1):
            if acts[t].is_identity:
                how, dz_T = _IDENTITY, None
            elif stacked is not None and t < T - 1:
                how, dz_T = _G_PRIME_READY, g_prime[t][:-1]
            elif t < T - 1:
                how, dz_T = _BACKPROP, np.empty((sizes[t + 1], n), dtype)
            else:                              # the output layer's, as its h_T: the transposed (n, n_T)
                how, dz_T = _BACKPROP, np.empty((n, sizes[t + 1]), dtype).T
            # [h_{t-1}^T; 1^T] dL/dz_t: ndarray.dot would copy the strided n-column view, matmul reads it.
            dwb_dot = self.aug[t].dot if full else functools.partial(np.matmul, cols(self.aug[t]))
            if not param_grads:                # only dL/dx is wanted: no [dW_t; db_t] at all
                dwb_dot = None
            dh_T = np.empty((sizes[t], n), dtype) if t > 0 or input_grad else None
            layers.append((how, acts[t], cols(self.h_T[t]), dz_T, None if dz_T is None else dz_T.T,
                           dwb_dot, self._params[2 * t], dwb[t], dh_T, None if dh_T is None else dh_T.T))
        return (n, sizes[-1]), stacked, layers


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
            input h_{t-1} (the first is x), as (B, n) arrays.  They are views
            of work buffers (transposed ones but for the output layer's),
            overwritten by the next forward at the same batch size: copy them
            to keep them.  Meant for per-layer statistics, e.g. the
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
        total = self.param_count(self._sizes)
        # the flat buffers nbytes() counts
        self.flat_params = np.zeros(total, dtype)
        self.flat_grads = np.zeros(total, dtype)
        self._flat_scratch = np.zeros(total, dtype)     # this batch's gradient
        self.params = _views(self.flat_params, shapes)
        self.grads = _views(self.flat_grads, shapes)
        # [W_t; b_t] as one contiguous (n_{t-1} + 1, n_t) view per layer (b_t is stored right after
        # W_t): the training path's single-dot affine maps and gradients (see _Workspace).
        self._wb = _layer_views(self.flat_params, self._sizes)
        self._dwb = {False: _layer_views(self.flat_grads, self._sizes),      # accumulate=False: grads
                     True: _layer_views(self._flat_scratch, self._sizes)}    # True: scratch, then added
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
        self._chain = []
        for t, (act, wb) in enumerate(zip(self._acts, self._wb)):
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

    @staticmethod
    def param_count(sizes):
        """The number of scalars of a network of layer widths ``sizes``, known before building it."""
        return sum((int(a) + 1) * int(b) for a, b in zip(sizes[:-1], sizes[1:]))

    @classmethod
    def nbytes(cls, sizes, dtype):
        """Bytes of the flat buffers a network of ``sizes`` allocates (parameters, gradients and the
        batch-gradient scratch), before building it: how large a network a machine can hold."""
        return 3 * cls.param_count(sizes) * np.dtype(dtype).itemsize

    @property
    def preactivations(self):
        return [] if self._last is None else list(self._last.z)

    @property
    def activations_cache(self):
        return [] if self._last is None else list(self._last.h)

    @property
    def layer_inputs(self):
        """[x, h_1, ..., h_{T-1}]: what each layer received in the last forward()."""
        return [] if self._last is None else [self._last.x] + self._last.h[:-1]

    def __repr__(self):
        return (f"MLP(sizes={self._sizes}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, dtype={self.dtype.name})")

    # ---------------------------------------------------------------- forward
    def _workspace(self, x):
        """The workspace for input x, made on first use; checks x's shape (workspaces are keyed by it)."""
        if x.ndim != 2 or x.shape[1] != self._sizes[0]:
            raise ValueError(f"forward expects x of shape (batch, {self._sizes[0]}), "
                             f"got {x.shape}")
        ws = self._workspaces.get(x.shape)
        if ws is None:
            if len(self._workspaces) >= _MAX_CACHED_BATCH_SIZES:
                # Evict the oldest size; self._last keeps its own reference.
                del self._workspaces[next(iter(self._workspaces))]
            ws = _Workspace(x.shape[0], self._sizes, self._acts, self.dtype, self.params, self._wb, self._dwb)
            self._workspaces[x.shape] = ws
        return ws

    def _check_input_dtype(self, x):
        # What np.copyto(casting="same_kind") allowed: ints, bools and floats, not complex or objects.
        if not np.can_cast(x.dtype, self.dtype, "same_kind"):
            raise TypeError(f"expected a real-valued input, got dtype {x.dtype}")

    def forward(self, x):
        """Output h_T (B, n_T) for input x (B, n_0), caching what backward needs.

        x is copied (and cast once to ``dtype``) into the workspace, so later
        changes to x do not corrupt the gradient.  Returns a fresh array.
        """
        x = np.asarray(x)
        ws = self._workspaces.get(x.shape) or self._workspace(x)   # a hit is also the shape check
        if x.dtype != self.dtype:
            self._check_input_dtype(x)
        ws.x_T[...] = x.T                       # the one dtype cast (np.copyto's dispatch costs ~1 us)
        for a, b, z, g, h in ws.forward_layers:  # batch in columns but for the output (see _Workspace)
            a.dot(b, out=z)                     # z_t = h_{t-1} W_t + b_t, as [h_{t-1}, 1] [W_t; b_t]
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
        if x.dtype != self.dtype:
            self._check_input_dtype(x)
        self._x_one[...] = x                     # also the one dtype cast
        for h_one, wb, z, f in self._chain:      # z is the h_t part of [h_t, 1]
            h_one.dot(wb, out=z)                 # z_t = [h_{t-1}, 1] [W_t; b_t]
            if f is not None:
                f(z, z)                          # h_t = g(z_t), in place
        return z.copy()

    # --------------------------------------------------------------- backward
    def backward(self, dy, rows=None, input_grad=True, accumulate=True, param_grads=True):
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
        param_grads: False computes dL/dx alone and leaves ``grads`` untouched: backprop through a
            network held fixed into its input (SAC's actor loss reaches the action through the critics).
        """
        ws = self._last
        if ws is None:
            raise RuntimeError("backward() called before forward(): no cached activations")
        # Into self.grads, or into the scratch vector that is then added (accumulate).
        dy_shape, stacked, layers = (ws.plans.get((rows, input_grad, accumulate, param_grads))
                                     or ws.backward_plan(rows, input_grad, accumulate, param_grads))
        dy = np.asarray(dy)
        if dy.shape != dy_shape:
            raise ValueError(f"backward expects dy of shape {dy_shape} (the last forward's "
                             f"output shape{'' if rows is None else ', first rows'}), got {dy.shape}")
        if dy.dtype != self.dtype:
            dy = dy.astype(self.dtype)
        if stacked is not None:                 # g'(z_t) of all hidden layers at once (see _Workspace)
            df, h_hidden, g_prime = stacked
            df(h_hidden, out=g_prime)
        # dL/dh_t as (rows, n_t) and as its transpose (the workspace's batch-in-columns layout), t = T down.
        g, g_T = dy, dy.T
        for how, act, h_T, dz_T, dz, dwb_dot, W, dwb, dh_T, dh in layers:
            if how is _IDENTITY:
                dz_T, dz = g_T, g               # dL/dz_t = dL/dh_t
            elif how is _G_PRIME_READY:
                np.multiply(dz_T, g_T, out=dz_T)  # dL/dz_t = g'(z_t) * dL/dh_t  (dz_T held g'(z_t)^T)
            else:
                act.backprop(g_T, h_T, out=dz_T)  # dL/dz_t = dL/dh_t * g'(z_t)
            if dwb_dot is not None:
                dwb_dot(dz, out=dwb)            # [dL/dW_t; dL/db_t] = [h_{t-1}^T; 1^T] dL/dz_t
            if dh_T is None:                    # t = 1 and no input_grad: dL/dx is not needed
                g = None
                break
            W.dot(dz_T, out=dh_T)               # dL/dh_{t-1}^T = W_t dL/dz_t^T
            g, g_T = dh, dh_T
        if accumulate and param_grads:
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


def _layer_views(flat, sizes):
    """Per layer t the contiguous (n_{t-1} + 1, n_t) view [W_t; b_t] of ``flat`` (layout W_1, b_1, ...)."""
    views, offset = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        n = (fan_in + 1) * fan_out
        views.append(flat[offset:offset + n].reshape(fan_in + 1, fan_out))
        offset += n
    return views


def _views(flat, shapes):
    """Consecutive reshaped views into ``flat`` (no copies)."""
    views, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        views.append(flat[offset:offset + n].reshape(shape))
        offset += n
    return views
