"""Proximal Policy Optimization (Schulman et al. 2017), its update shaped like CleanRL's ppo.py.

The policy, the critic, the rollout and the GAE advantages are ``agents.onpolicy``'s; either head: a
softmax over Discrete actions, a diagonal Gaussian over a Box (``agents.heads``). What PPO adds to
REINFORCE is reuse: ``update_epochs`` passes over each rollout, each in ``num_minibatches`` shuffled
minibatches, one policy step and one critic step per minibatch. That is safe because the policy loss
stops pulling once the probability ratio to the rollout's policy has moved past ``1 +- clip_coef``:

    r_i    = pi(a_i | s_i) / pi_old(a_i | s_i)
    loss   = -mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i) - ent_coef * mean_i H_i
    d loss / d log pi(a_i | s_i) = -r_i A_i / B   where the min is the unclipped term, else 0

(the clipped term is constant in the policy). At r = 1 that is REINFORCE's gradient; past the clip in
the direction the advantage favours, the row's gradient is 0. The advantages, value targets and old
log-probabilities are computed once, before the first epoch. Metrics are means over the minibatch steps;
clipfrac is the fraction of rows with |r - 1| > eps, approx_kl = mean (r - 1) - log r (Schulman's k3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import check_at_least, check_range
from agents.onpolicy import OnPolicyAgent, OnPolicyConfig, explained_variance


@dataclass
class PPOConfig(OnPolicyConfig):
    """Hyperparameters of PPO (the TOML ``[agent]`` table for ``algo = "ppo"``); ``agents.onpolicy.
    OnPolicyConfig`` has the ones PG shares. Always with a critic (GAE)."""

    clip_coef: float = 0.2               # the surrogate's clip of the probability ratio, 1 +- clip_coef
    update_epochs: int = 4               # passes over each rollout
    num_minibatches: int = 4             # minibatches per pass

    def validate(self) -> None:
        super().validate()
        check_range(self, ("clip_coef",), 0.0, 1.0, open_low=True)
        check_at_least(self, ("update_epochs", "num_minibatches"), 1)


class PPOAgent(OnPolicyAgent):
    name = "ppo"

    def __init__(self, config: PPOConfig, env_info, rng: np.random.Generator):
        super().__init__(config, env_info, rng, baseline="value")

    def update(self, obs, actions, adv, values, targets, lr, value_lr) -> dict[str, float]:
        """Epochs of shuffled minibatches over the R rows: per minibatch one step on the clipped surrogate
        (minus the entropy bonus) and one on the value loss."""
        c = self.config
        old_log_probs = self.log_probs(obs, actions)
        target = targets.reshape(-1, 1).astype(self.dtype)
        self.value_opt.lr = value_lr
        sums: dict[str, float] = {}
        n_steps = 0
        for _ in range(c.update_epochs):
            for idx in np.array_split(self.rng.permutation(len(adv)), min(c.num_minibatches, len(adv))):
                metrics = self.policy_loss(obs[idx], actions[idx], adv[idx], old_log_probs[idx])
                metrics.update(self.policy_step(lr))
                metrics["losses/value_loss"], metrics["losses/value_grad_norm"] = \
                    self.critic_step(obs[idx], target[idx])
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                n_steps += 1
        metrics = {key: value / n_steps for key, value in sums.items()}
        metrics["losses/explained_variance"] = explained_variance(values, targets)
        return metrics

    def policy_loss(self, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray,
                    old_log_probs: np.ndarray, backward: bool = True) -> dict[str, float]:
        """The clipped surrogate minus the entropy bonus on a minibatch of B rows, and its statistics; with
        ``backward`` its gradient is written to the grads (replacing what they held).
        obs (B, d), actions (B,) or (B, m), advantages A and old_log_probs (B,)."""
        eps = self.config.clip_coef
        out = self.policy.forward(obs) if backward else self.policy.predict(obs)
        adv = advantages.astype(out.dtype)
        batch = len(adv)
        log_ratio = self.head.log_prob(out, actions) - old_log_probs
        ratio = np.exp(log_ratio)
        unclipped = ratio * adv
        # Ufuncs, not np.clip / np.mean: their Python dispatch costs more than the math on a minibatch.
        clipped = np.minimum(np.maximum(ratio, 1 - eps), 1 + eps) * adv
        loss = -float(np.add.reduce(np.minimum(unclipped, clipped))) / batch
        dlogp = -np.where(unclipped <= clipped, unclipped, 0) / batch      # -r A / B where unclipped is the min
        grads = self.head.log_prob_backward(dlogp)
        metrics = {"losses/clipfrac": np.count_nonzero(np.abs(ratio - 1) > eps) / batch,
                   "losses/approx_kl": float(np.add.reduce(ratio - 1 - log_ratio)) / batch}
        metrics.update(self.policy_gradient(out, loss, grads, backward))
        return metrics

    def policy_checks(self, obs, actions, adv) -> dict:
        # Old log-probabilities shifted by +-2 clip_coef, so that rows land on both sides of the clip.
        shift = np.random.default_rng(0).choice([-2.0, 0.0, 2.0], size=len(adv)) * self.config.clip_coef
        old = self.log_probs(obs, actions) + shift
        return {"clipped_surrogate": lambda: self.policy_loss(obs, actions, adv, old)["losses/policy_loss"]}
