"""rlnn: a small, readable NumPy neural-network core for reinforcement learning.

Hand-written MLP with backprop, losses, optimizers and schedules, every
gradient verified against finite differences (see :func:`gradcheck`).

    from rlnn import MLP, losses, optim
    net = MLP([4, 64, 64, 2], activation="tanh", dtype=np.float32)
    opt = optim.Adam(net.flat_params, net.flat_grads, lr=1e-3)
    net.zero_grad()
    loss, dq = losses.l2(net.forward(x), y)
    net.backward(dq)
    opt.step()

Importing rlnn limits BLAS to one thread (``rlnn.threads``: tiny matrices; overridable).
"""
from .threads import pin_blas_threads

pin_blas_threads()

from . import activations, init, losses, optim, schedules
from .checkpoint import CheckpointError, load, save
from .gradcheck import gradcheck, numerical_gradient, relative_error
from .mlp import MLP
from .optim import clip_grad_norm  # noqa: E402  (after the BLAS limit, as the imports above)

__all__ = ["MLP", "activations", "init", "losses", "optim", "schedules",
           "gradcheck", "numerical_gradient", "relative_error", "clip_grad_norm",
           "save", "load", "CheckpointError"]
