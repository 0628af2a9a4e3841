"""Policy gradient: REINFORCE with reward-to-go, an optional learned value baseline and GAE (the lecture's).

The policy, the critic, the rollout and the advantages are ``agents.onpolicy``'s (its docstring has the
advantages by ``baseline`` and the carry-over of unfinished episodes without a critic); either head:
a softmax over Discrete actions, a diagonal Gaussian over a Box (``agents.heads``).

One update per rollout, on the rows in use:

    policy loss = -mean_t A_t log pi(a_t | s_t) - ent_coef * mean_t H(pi(. | s_t))
    value loss  = l2 or huber(V(s_t), R_t)                          (baseline = "value" only)

The policy loss is the head's negative log-likelihood with the advantages as sample weights (for the
softmax: ``softmax_cross_entropy``, a classifier's loss whose labels are the actions taken). One gradient
step on the policy per rollout: REINFORCE is on-policy, a second step would use data of an older policy
(``ppo`` is the algorithm that reuses a rollout). The critic may take ``value_steps`` steps on the same
batch, which is just regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import check_at_least, check_choice
from agents.onpolicy import OnPolicyAgent, OnPolicyConfig, explained_variance

BASELINES = ("none", "mean", "value")


@dataclass
class PGConfig(OnPolicyConfig):
    """Hyperparameters of the policy-gradient agent (the TOML ``[agent]`` table for ``algo = "pg"``);
    ``agents.onpolicy.OnPolicyConfig`` has the ones PPO shares."""

    baseline: str = "value"              # none | mean (of the returns) | value (a critic V(s), with GAE)
    value_steps: int = 10                # critic gradient steps per rollout (same batch, full-batch Adam)

    def validate(self) -> None:
        super().validate()
        check_choice(self, "baseline", BASELINES)
        check_at_least(self, ("value_steps",), 1)


class PGAgent(OnPolicyAgent):
    name = "pg"

    def __init__(self, config: PGConfig, env_info, rng: np.random.Generator):
        super().__init__(config, env_info, rng, baseline=config.baseline)

    def update(self, obs, actions, adv, values, targets, lr, value_lr) -> dict[str, float]:
        """One policy step on the REINFORCE loss, then ``value_steps`` full-batch critic steps."""
        metrics = self.policy_loss(obs, actions, adv)
        metrics.update(self.policy_step(lr))
        if self.value is None:
            metrics["losses/value_loss"] = 0.0
            return metrics
        target = targets.reshape(-1, 1).astype(self.dtype)
        self.value_opt.lr = value_lr
        metrics["losses/value_loss"], metrics["losses/value_grad_norm"] = self.critic_step(obs, target)
        for _ in range(self.config.value_steps - 1):
            self.critic_step(obs, target)
        metrics["losses/explained_variance"] = explained_variance(values, targets)
        return metrics

    def policy_loss(self, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray,
                    backward: bool = True) -> dict[str, float]:
        """-mean_i A_i log pi(a_i | s_i) - ent_coef * mean_i H_i on R rows and its statistics; with
        ``backward`` its gradient is written to the grads (replacing what they held).
        obs (R, d), actions (R,) or (R, m), advantages A (R,)."""
        out = self.policy.forward(obs) if backward else self.policy.predict(obs)
        loss, grads = self.head.nll(out, actions, advantages.astype(out.dtype))
        return self.policy_gradient(out, loss, grads, backward)

    def policy_checks(self, obs, actions, adv) -> dict:
        return {"policy_loss": lambda: self.policy_loss(obs, actions, adv)["losses/policy_loss"]}
