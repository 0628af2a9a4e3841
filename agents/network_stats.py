"""Look inside the networks while they learn: per-layer statistics and histograms for TensorBoard.

For every network an agent names in ``networks()`` (policy, value, q, target), every
``run.network_log_every`` env steps:

    network/{net}/layer{t}/weight_norm         ‖W_t‖ (Frobenius)
    network/{net}/layer{t}/grad_norm           ‖(dW_t, db_t)‖ of the last backward pass
    network/{net}/layer{t}/update_ratio        ‖Δ(W_t, b_t)‖ / ‖(W_t, b_t)‖ of the last optimizer step:
                                               ~1e-3 is healthy; 1e-1 means the learning rate is too big,
                                               1e-6 that the layer has stopped learning
    network/{net}/layer{t}/dead_fraction       ReLU hidden units inactive on the whole last batch
    network/{net}/layer{t}/saturated_fraction  tanh/sigmoid hidden units with |a| > 0.99 (sigmoid:
                                               a < 0.01 or a > 0.99), averaged over the last batch

and histograms ``network/{net}/layer{t}/weights``, ``.../biases``, ``.../weight_grads``, and of the
outputs of the last batch: ``network/policy/action_probs`` for a softmax policy (``output_kind`` "logits"),
``network/policy/means/dim{j}`` for a Gaussian policy's means of action dimension j ("means"; its std is
state-independent, the agent logs it as ``charts/action_std``), ``network/q/q_values/action{i}`` for a
Q-network ("q_values"), ``network/{net}/outputs`` otherwise.

The update ratio needs the parameters from before the last step: for each optimizer in the agent's
``optimizers()`` the inspector registers a step pre-hook (``rlnn.optim``) that copies the flat
parameters with one ``np.copyto`` before every step.
"""

from __future__ import annotations

import numpy as np

SQUASHING = ("tanh", "sigmoid")


def softmax_rows(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def dead_fraction(z: np.ndarray) -> float:
    """Fraction of ReLU units whose pre-activation is <= 0 on every row of the batch (no gradient flows)."""
    return float((z <= 0).all(axis=0).mean())


def saturated_fraction(h: np.ndarray, activation: str) -> float:
    if activation == "tanh":
        return float((np.abs(h) > 0.99).mean())
    return float(((h < 0.01) | (h > 0.99)).mean())


class NetworkInspector:
    """Statistics of ``agent.networks()``; ``close()`` unregisters its optimizer hooks."""

    def __init__(self, agent):
        self.agent = agent
        self.before: dict[str, np.ndarray] = {}      # network name -> its parameters before the last step
        self._hooks = [self._watch(name, opt) for name, opt in agent.optimizers().items()]

    def _watch(self, name: str, opt):
        # opt.params is networks()[name].flat_params; a copy, not empty_like: before the first step the
        # update ratio is then 0, not a norm of uninitialized memory.
        snapshot = opt.params.copy()
        self.before[name] = snapshot

        def remember_params(opt) -> None:
            np.copyto(snapshot, opt.params)

        return opt.register_step_pre_hook(remember_params)

    def close(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def layer_stats(self, name: str, net) -> dict[str, float]:
        out: dict[str, float] = {}
        before = self.before.get(name)
        offset = 0
        zs, hs = net.preactivations, net.activations_cache
        for t in range(net.num_layers):
            W, b = net.params[2 * t], net.params[2 * t + 1]
            size = W.size + b.size
            layer = f"network/{name}/layer{t + 1}"
            theta = net.flat_params[offset:offset + size]
            out[f"{layer}/weight_norm"] = float(np.linalg.norm(W))
            out[f"{layer}/grad_norm"] = float(np.linalg.norm(net.flat_grads[offset:offset + size]))
            if before is not None:
                delta = np.linalg.norm(theta - before[offset:offset + size])
                out[f"{layer}/update_ratio"] = float(delta / max(np.linalg.norm(theta), 1e-12))
            hidden = t < net.num_layers - 1
            if hidden and zs:
                if net.activation == "relu":
                    out[f"{layer}/dead_fraction"] = dead_fraction(zs[t])
                elif net.activation in SQUASHING:
                    out[f"{layer}/saturated_fraction"] = saturated_fraction(hs[t], net.activation)
            offset += size
        return out

    def log(self, logger, step: int) -> None:
        kinds = self.agent.output_kinds
        for name, net in self.agent.networks().items():
            logger.scalars(self.layer_stats(name, net), step)
            for t in range(net.num_layers):
                layer = f"network/{name}/layer{t + 1}"
                logger.histogram(f"{layer}/weights", net.params[2 * t], step)
                logger.histogram(f"{layer}/biases", net.params[2 * t + 1], step)
                logger.histogram(f"{layer}/weight_grads", net.grads[2 * t], step)
            outputs = net.activations_cache[-1] if net.activations_cache else None
            if outputs is None:
                continue
            kind = kinds.get(name)
            if kind == "logits":
                logger.histogram(f"network/{name}/action_probs", softmax_rows(outputs.astype(np.float64)), step)
            elif kind == "q_values":
                for a in range(outputs.shape[1]):
                    logger.histogram(f"network/{name}/q_values/action{a}", outputs[:, a], step)
            elif kind == "means":
                for j in range(outputs.shape[1]):
                    logger.histogram(f"network/{name}/means/dim{j}", outputs[:, j], step)
            else:
                logger.histogram(f"network/{name}/outputs", outputs, step)
