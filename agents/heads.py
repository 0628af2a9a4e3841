"""Policy heads by action space: what turns an MLP's outputs into a distribution over actions.

A policy is a classifier over actions when they are discrete, and a density over them when they are
continuous. A head owns that distribution's math, apart from any network: sampling, the greedy action,
log-probability, entropy, and their gradients with respect to the network outputs (the chain rule then
continues through ``MLP.backward``). Every gradient here is checked against finite differences in
float64 (tests/test_heads.py).

Heads:

* categorical (softmax) over Discrete(k): the MLP outputs k logits;
* diagonal Gaussian over a Box (PG, PPO): the MLP outputs the mean, the log standard deviation is a
  learned state-independent vector;
* tanh-squashed Gaussian over a Box (SAC): the MLP outputs mean and log-std, a = tanh(u) scaled into
  the Box, with the log-determinant correction in the log-probability.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------- categorical and diagonal Gaussian


# ------------------------------------------------------------------------ tanh-squashed Gaussian (SAC)
# The SAC actor's MLP outputs 2m numbers per row, [mean | raw log-std]. With u = mean + std * noise
# (noise ~ N(0, I), the reparameterization: u is a differentiable function of the outputs) and
# y = tanh(u), the action a = scale * y + offset lies inside the Box [low, high]. Its log-density is
# the Gaussian's at u minus the log-determinant of du -> da (change of variables):
#
#     log pi(a|s) = sum_j [ -noise_j^2 / 2 - log std_j - log(2 pi) / 2 - log scale_j - log(1 - y_j^2) ]
#
# computed as log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact and finite for any u.
# The raw log-std is squashed smoothly into [LOG_STD_MIN, LOG_STD_MAX] (CleanRL's bounds and squash):
# log std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) (tanh(raw) + 1) / 2.

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class SquashedGaussian:
    """The tanh-squashed diagonal Gaussian over a Box of ``m = len(low)`` dimensions (SAC's actor).

    ``sample(out, noise)`` -> (actions (B, m), log_probs (B,)), with ``out`` the actor's outputs (B, 2m)
    and ``noise`` (B, m) standard normal; ``backward(d_actions, d_log_probs)`` -> dL/d out (B, 2m) of the
    last ``sample`` (noise held fixed), given dL/da and dL/d log pi. ``mode(out)``: the greedy action
    tanh(mean), scaled.
    """

    def __init__(self, low, high, dtype=np.float32):
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.dim = len(low)
        self.scale = ((high - low) / 2).astype(dtype)
        self.offset = ((high + low) / 2).astype(dtype)
        # log pi's constant part per row: -sum_j (log(2 pi) / 2 + log scale_j)
        self.log_prob_const = float(-self.dim * 0.5 * np.log(2 * np.pi) - np.log(self.scale.astype(np.float64)).sum())
        self._half_range = (LOG_STD_MAX - LOG_STD_MIN) / 2
        self._last = None

    def log_std(self, raw: np.ndarray) -> np.ndarray:
        return LOG_STD_MIN + self._half_range * (np.tanh(raw) + 1.0)

    def raw_log_std(self, log_std: float) -> float:
        """The raw output whose log-std is ``log_std`` (the inverse of ``log_std``; inside the bounds)."""
        return float(np.arctanh((log_std - LOG_STD_MIN) / self._half_range - 1.0))

    def mode(self, out: np.ndarray) -> np.ndarray:
        """The greedy action: the squashed mean, scaled into the Box (no noise)."""
        return np.tanh(out[..., :self.dim]) * self.scale + self.offset

    def action(self, out: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """A sampled action alone (the acting path: no log-probability, nothing kept for backward);
        ``out`` (..., 2m), ``noise`` (..., m)."""
        m = self.dim
        u = out[..., :m] + np.exp(self.log_std(out[..., m:])) * noise
        return np.tanh(u) * self.scale + self.offset

    def sample(self, out: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.dim
        mean, tanh_raw = out[:, :m], np.tanh(out[:, m:])
        log_std = LOG_STD_MIN + self._half_range * (tanh_raw + 1.0)
        std = np.exp(log_std)
        u = mean + std * noise
        y = np.tanh(u)
        log_one_minus_y2 = 2.0 * (np.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))     # log(1 - tanh(u)^2)
        log_probs = (-0.5 * noise * noise - log_std - log_one_minus_y2).sum(axis=1) + self.log_prob_const
        self._last = (noise, tanh_raw, std, y)
        return y * self.scale + self.offset, log_probs

    def backward(self, d_actions: np.ndarray, d_log_probs: np.ndarray) -> np.ndarray:
        """dL/d out (B, 2m) = [dL/d mean | dL/d raw], the chain rule through the last ``sample``."""
        noise, tanh_raw, std, y = self._last
        d_lp = d_log_probs[:, None]
        # u -> a = scale tanh(u) + offset, and u -> log pi through -log(1 - tanh(u)^2), whose du is 2 tanh(u)
        d_u = d_actions * self.scale * (1.0 - y * y) + d_lp * 2.0 * y
        d_mean = d_u                                          # u = mean + std noise
        d_log_std = d_u * std * noise - d_lp                  # du/dlog std = std noise; log pi has -log std
        d_raw = d_log_std * self._half_range * (1.0 - tanh_raw * tanh_raw)
        return np.concatenate((d_mean, d_raw), axis=1)
