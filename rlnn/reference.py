"""The straightforward per-layer NumPy MLP, for checking and benchmarking rlnn's fast one.

``ReferenceMLP`` is the textbook version of what ``rlnn.MLP`` + ``losses.l2`` + ``optim.Adam`` do: a
list of W and b per layer, every operation allocating its result, one Adam loop per tensor. It is
slow on purpose (``experiments/bench_nn.py`` times rlnn against it) and easy to check by eye, so
``check_reference_agrees`` can prove one rlnn training step equal to it.
"""
import numpy as np

from . import losses, optim
from .mlp import MLP

__all__ = ["ACTIVATIONS", "ReferenceMLP", "make_rlnn_step", "check_reference_agrees"]

ACTIVATIONS = {  # name -> (f(z), f'(z) written in terms of the output y = f(z))
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "relu": (lambda z: np.maximum(z, 0), lambda y: (y > 0).astype(y.dtype)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda y: y * (1 - y)),
}


class ReferenceMLP:
    """Per-layer lists of W and b, copied from ``net``; every operation allocates its result."""

    def __init__(self, net, activation):
        self.W = [w.copy() for w in net.weights]
        self.b = [b.copy() for b in net.biases]
        self.f, self.df = ACTIVATIONS[activation]
        self.m = [np.zeros_like(p) for p in self.W + self.b]
        self.v = [np.zeros_like(p) for p in self.W + self.b]
        self.t = 0

    def forward(self, x):
        """h_t = f(h_{t-1} W_t + b_t), identity on the last layer; keeps every h_t for backward."""
        self.hs = [x]
        h = x
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = h @ W + b
            h = z if i == len(self.W) - 1 else self.f(z)
            self.hs.append(h)
        return h

    def backward(self, dy):
        """[dL/dW_1, ..., dL/dW_T, dL/db_1, ..., dL/db_T] from dL/dy of the last forward."""
        dWs, dbs = [], []
        g = dy
        for i in reversed(range(len(self.W))):
            dz = g if i == len(self.W) - 1 else g * self.df(self.hs[i + 1])
            dWs.insert(0, self.hs[i].T @ dz)
            dbs.insert(0, dz.sum(axis=0))
            g = dz @ self.W[i].T
        return dWs + dbs

    def adam(self, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        """The textbook bias-corrected Adam step, one tensor at a time."""
        self.t += 1
        for k, (p, g) in enumerate(zip(self.W + self.b, grads)):
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)

    def train_step(self, x, y):
        """forward, mean squared error, backward, Adam."""
        out = self.forward(x)
        diff = out - y
        _ = np.mean(diff ** 2)
        self.adam(self.backward(2 * diff / diff.size))

    def predict(self, x):
        h = x
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = h @ W + b
            h = z if i == len(self.W) - 1 else self.f(z)
        return h


def make_rlnn_step(net, opt):
    """rlnn's training step as ``ReferenceMLP.train_step`` computes it: ``step(x, y)``."""
    def step(x, y):
        # As a training loop uses it: the gradient overwrites the last one (no zero_grad, no
        # accumulation add) and dL/dx, which no one needs, is not computed.
        _, dy = losses.l2(net.forward(x), y)
        net.backward(dy, input_grad=False, accumulate=False)
        opt.step()
    return step


def check_reference_agrees(activation):
    """One training step of each from the same weights must give the same parameters (AssertionError if not)."""
    net = MLP([4, 16, 16, 2], activation=activation, seed=0)
    ref = ReferenceMLP(net, activation)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    make_rlnn_step(net, optim.Adam(net.flat_params, net.flat_grads))(x, y)
    ref.train_step(x, y)
    for a, b in zip(net.weights + net.biases, ref.W + ref.b):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.predict(x[0]), ref.predict(x[:1])[0], rtol=1e-10)
