"""Policy heads by action space: what turns an MLP's outputs into a distribution over actions.

A policy is a classifier over actions when they are discrete, and a density over them when they are
continuous. A head owns that distribution's math, apart from any network: sampling, the greedy action,
log-probability, entropy, and their gradients with respect to the network outputs (the chain rule then
continues through ``MLP.backward``). Every gradient here is checked against finite differences in
float64 (tests/test_heads.py).

Heads:

* categorical (softmax) over Discrete(k): the MLP outputs k logits;
* diagonal Gaussian over a Box (PG, PPO): the MLP outputs the mean, the log standard deviation is a
  learned state-independent vector; actions reach the env clipped into the Box (see ``DiagonalGaussian``);
* tanh-squashed Gaussian over a Box (SAC): the MLP outputs mean and log-std, a = tanh(u) scaled into
  the Box, with the log-determinant correction in the log-probability.
"""

from __future__ import annotations

import math

import numpy as np

from rlnn import losses
from rlnn.activations import log_softmax

# ----------------------------------------------------------------- categorical and diagonal Gaussian

LOG_2PI = math.log(2 * math.pi)

# The PG/PPO heads share one interface. ``out`` is the policy MLP's output (B, num_outputs); a head's own
# parameters (``flat_params``, size 0 for the categorical) are trained with the policy, their gradient is
# ``flat_grads``. Each gradient method returns the pair (dL/d out, dL/d flat_params):
#
#   sample(out, rng) -> actions     a draw per row (what the learner stores and scores)
#   mode(out) -> actions            the greedy action, no draw
#   env_actions(actions)            what the env is given (the Box's clip; the identity for Discrete)
#   log_prob(out, actions) -> (B,)  log pi(a_i | s_i); caches what log_prob_backward needs
#   log_prob_backward(dlogp)        dlogp (B,) = dL/d log pi(a_i | s_i)  ->  (dL/d out, dL/d params)
#   nll(out, actions, weights)      mean_i -w_i log pi(a_i | s_i) and its gradient pair: REINFORCE's loss
#                                   with the advantages as the weights
#   entropy(out)                    the mean entropy H of the rows and its gradient pair


class Categorical:
    """Softmax over Discrete(k): the MLP outputs k logits z, pi(a | s) = softmax(z)_a.

    d log pi(a) / dz = onehot(a) - p, so the gradient of any loss through log pi(a_i | s_i) is
    (p_i - onehot(a_i)) times -dL/d log pi. Its REINFORCE loss is ``losses.softmax_cross_entropy`` and
    its entropy ``losses.entropy``: the classifier's loss with the advantages as sample weights.
    """

    output_kind = "logits"

    def __init__(self, num_actions: int, dtype=np.float32):
        self.num_outputs = int(num_actions)
        self.flat_params = np.zeros(0, dtype)
        self.flat_grads = np.zeros(0, dtype)
        self._logp = self._actions = None

    def sample(self, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action per row from softmax(logits), by inverting the CDF (overwrites ``logits``)."""
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        cdf = np.cumsum(logits, axis=1)
        u = rng.random(len(logits))
        u *= cdf[:, -1]
        return (cdf < u[:, None]).sum(axis=1)

    def mode(self, logits: np.ndarray) -> np.ndarray:
        return logits.argmax(axis=1)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        return actions

    def log_prob(self, logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self._logp, self._actions = log_softmax(logits), actions
        return self._logp[np.arange(len(actions)), actions]

    def log_prob_backward(self, dlogp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grad = np.exp(self._logp, out=self._logp)                     # p (the cache is used up)
        grad[np.arange(len(self._actions)), self._actions] -= 1      # p - onehot(a) = -d log pi(a) / dz
        grad *= (-dlogp)[:, None].astype(grad.dtype, copy=False)
        return grad, self.flat_grads[:0]

    def nll(self, logits: np.ndarray, actions: np.ndarray, weights: np.ndarray) -> tuple[float, tuple]:
        loss, dlogits = losses.softmax_cross_entropy(logits, actions, weights=weights)
        return loss, (dlogits, self.flat_grads[:0])

    def entropy(self, logits: np.ndarray) -> tuple[float, tuple]:
        ent, dent = losses.entropy(logits.astype(np.float64))
        return ent, (dent, self.flat_grads[:0])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class DiagonalGaussian:
    """A Gaussian over a Box of m dimensions: the MLP outputs the mean mu (B, m), the standard deviation is
    sigma = exp(log_std), one learned log_std per dimension for every state (CleanRL's and SB3's PPO).

    Per row, with z = (a - mu) / sigma::

        log pi(a | s) = sum_j -z_j^2 / 2 - log_std_j - log(2 pi) / 2
        d log pi / d mu_j      = z_j / sigma_j
        d log pi / d log_std_j = z_j^2 - 1
        H = sum_j log_std_j + (1 + log(2 pi)) / 2,   dH / d log_std_j = 1, dH / d mu = 0

    Bounds by clipping, as CleanRL and SB3 do: the learner stores and scores the unclipped sample a, and
    only the env is given clip(a, low, high) (``env_actions``); the greedy action is the clipped mean.
    The log-probability is then that of the Gaussian, which is exact for the stored sample, and the
    entropy has its closed form (a tanh-squashed Gaussian has neither).
    """

    output_kind = "means"
    param_name = "log_std"

    def __init__(self, low, high, log_std_init: float = 0.0, dtype=np.float32):
        self.low, self.high = np.asarray(low, dtype), np.asarray(high, dtype)
        self.num_outputs = len(self.low)
        self.flat_params = np.full(self.num_outputs, log_std_init, dtype)    # log_std
        self.flat_grads = np.zeros(self.num_outputs, dtype)
        self._z = self._std = None

    @property
    def log_std(self) -> np.ndarray:
        return self.flat_params

    def sample(self, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(mean.shape, dtype=mean.dtype)
        return mean + np.exp(self.log_std) * noise

    def mode(self, mean: np.ndarray) -> np.ndarray:
        return mean

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, self.low, self.high)

    def log_prob(self, mean: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self._std = np.exp(self.log_std)
        self._z = (actions - mean) / self._std
        return (-0.5 * self._z ** 2 - self.log_std).sum(axis=1) - 0.5 * self.num_outputs * LOG_2PI

    def log_prob_backward(self, dlogp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlogp = dlogp[:, None]
        dmean = dlogp * self._z / self._std                      # chain rule: dL/dlogp * dlogp/dmu
        dlog_std = (dlogp * (self._z ** 2 - 1)).sum(axis=0)      # summed over rows: one log_std for all
        return dmean, dlog_std

    def nll(self, mean: np.ndarray, actions: np.ndarray, weights: np.ndarray) -> tuple[float, tuple]:
        logp = self.log_prob(mean, actions)
        loss = -float(np.mean(weights * logp))
        return loss, self.log_prob_backward(-weights / len(weights))

    def entropy(self, mean: np.ndarray) -> tuple[float, tuple]:
        ent = float(self.log_std.sum()) + 0.5 * self.num_outputs * (1 + LOG_2PI)
        return ent, (np.zeros_like(mean), np.ones_like(self.log_std))

    def state_dict(self) -> dict:
        return {"log_std": self.log_std.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.log_std[...] = state["log_std"]


def policy_head(env_info, log_std_init: float = 0.0, dtype=np.float32):
    """The PG/PPO head for an env's action space (``agents.base.EnvInfo``)."""
    if env_info.discrete:
        return Categorical(env_info.num_actions, dtype)
    return DiagonalGaussian(env_info.action_low, env_info.action_high, log_std_init, dtype)


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
