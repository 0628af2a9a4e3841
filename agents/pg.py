"""Policy gradient (REINFORCE with reward-to-go, optional learned value baseline and GAE).

The policy is a softmax MLP over the discrete actions: ``logits = policy(obs)``, actions are sampled
from ``softmax(logits)`` with the agent's own generator while training, and ``argmax(logits)`` when
greedy (no random number is drawn then, so evaluation never shifts the training stream).

One update per rollout of ``rollout_steps`` vector steps (``rollout_steps * num_envs`` rows, kept by
``agents.rollout.RolloutBuffer``), in three steps, one method each: ``advantages``, ``policy_step``,
``critic_steps``:

    advantages A_t  (see below), normalized over the batch if ``normalize_advantages``
    policy loss     = softmax_cross_entropy(logits, actions, weights=A) - ent_coef * entropy
                    = -mean_t A_t log pi(a_t | s_t) - ent_coef * mean_t H(pi(. | s_t))
    value loss      = l2 or huber(V(s_t), R_t)                      (baseline = "value" only)

both means over the rows *in use* only: the learner hands the losses just those rows, so the means are
plain means and the advantages are the policy loss's only weights. Not in use: the no-op reset rows of
NEXT_STEP autoreset, and without a critic the rows of unfinished episodes (carried over, see below).

One gradient step on the policy per rollout (REINFORCE is on-policy: a second step would use data of
an older policy); the critic may take ``value_steps`` steps on the same batch, which is just
regression. Gradients are clipped to a global norm ``max_grad_norm`` per network.

Clipped surrogate (``clip_coef > 0``, PPO's update; CleanRL's names): the policy may then reuse the
rollout, because its loss stops pulling once the probability ratio to the rollout's policy has moved
past ``1 +- clip_coef`` (``clipped_surrogate`` below). ``update_epochs`` passes over the rows in use, each
in ``num_minibatches`` shuffled minibatches; per minibatch one policy step and one critic step (the
critic's ``value_steps`` is then unused). The advantages, value targets and old log-probabilities are
computed once, before the first epoch.

Advantages, by ``baseline`` (``agents.returns`` has the formulas):

* ``"value"``: GAE(lambda) with a learned V. A truncated episode (time limit) and an episode still
  running at the end of the rollout are bootstrapped with ``V(next_obs)``; a terminated one is not.
  ``gae_lambda = 1`` is plain reward-to-go minus V(s_t). Value targets R_t = A_t + V(s_t).
* ``"none"`` / ``"mean"``: plain discounted reward-to-go G_t (minus the batch mean of G for
  ``"mean"``). Without a critic there is nothing to bootstrap with, so:
  - truncation is treated as the end of the episode: G after the time limit is 0. That is the
    return of the time-limited task the episode statistics measure (CartPole-v1: at most 500).
  - an episode still running when the rollout ends has an unknown reward-to-go, so its rows are
    *carried over*: they stay in the rollout buffer (``agents.rollout``) and join the next update,
    once the episode has finished and G is exact. (Their actions came from the policy one update
    older: a small, bounded off-policy lag, preferred here to biased truncated returns.) The buffer
    grows if an episode outlasts it.

Learning rate: ``lr`` constant, or ``lr_schedule = "linear"`` from ``lr`` to ``lr_end`` over
``lr_anneal_steps`` env steps (absolute: the agent does not know the run's total_steps), the value
optimizer following the same factor relative to ``value_lr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.base import (NETWORK_DTYPES, Agent, EnvInfo, check_at_least, check_choice, check_network,
                         check_positive, check_range, rng_state, set_rng_state, trained_network_bytes)
from agents.returns import episode_complete, gae, reward_to_go
from agents.rollout import Rollout, RolloutBuffer
from rlnn import MLP, losses, optim, schedules
from rlnn.activations import log_softmax

BASELINES = ("none", "mean", "value")
LR_SCHEDULES = ("constant", "linear")


@dataclass
class PGConfig:
    """Hyperparameters of the policy-gradient agent (the TOML ``[agent]`` table for ``algo = "pg"``)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    dtype: str = "float32"               # network precision: float32 (faster) or float64
    gamma: float = 0.99
    rollout_steps: int = 64              # vector steps per update (x num_envs rows)
    baseline: str = "value"              # none | mean | value
    gae_lambda: float = 0.95             # GAE(lambda); 1.0 = reward-to-go minus V (value baseline only)
    normalize_advantages: bool = True
    lr: float = 2e-3                     # policy Adam learning rate
    lr_schedule: str = "linear"          # constant | linear (lr -> lr_end over lr_anneal_steps)
    lr_end: float = 2e-4
    lr_anneal_steps: int = 200_000       # env steps
    adam_eps: float = 1e-8
    ent_coef: float = 0.0                # entropy bonus
    max_grad_norm: float = 0.5           # global-norm clipping per network; 0 = off
    value_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    value_lr: float = 2e-3
    value_loss: str = "l2"               # l2 | huber
    huber_delta: float = 10.0
    value_steps: int = 10                # critic gradient steps per rollout (same batch, full-batch Adam)
    clip_coef: float = 0.0               # > 0: clipped surrogate (PPO) with the two options below; 0 = REINFORCE
    update_epochs: int = 4               # passes over the rollout (clip_coef > 0 only)
    num_minibatches: int = 4             # minibatches per pass (clip_coef > 0 only)

    def validate(self) -> None:
        check_network(self)
        check_network(self, "value_hidden_sizes")
        check_choice(self, "dtype", NETWORK_DTYPES)
        check_choice(self, "baseline", BASELINES)
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_choice(self, "value_loss", ("l2", "huber"))
        check_range(self, ("gamma", "gae_lambda"), 0.0, 1.0)
        check_at_least(self, ("rollout_steps", "lr_anneal_steps", "value_steps", "update_epochs",
                              "num_minibatches"), 1)
        check_positive(self, ("lr", "value_lr", "adam_eps", "huber_delta"))
        check_at_least(self, ("lr_end", "ent_coef", "max_grad_norm"), 0)
        check_range(self, ("clip_coef",), 0.0, 1.0)


class PGAgent(Agent):
    name = "pg"
    output_kinds = {"policy": "logits", "value": "values"}

    def __init__(self, config: PGConfig, env_info: EnvInfo, rng: np.random.Generator):
        config.validate()
        super().__init__(config, env_info, rng)
        c = config
        self.dtype = np.dtype(c.dtype)
        d, k, n = env_info.obs_dim, env_info.num_actions, env_info.num_envs
        self.policy = MLP([d, *c.hidden_sizes, k], activation=c.activation, seed=rng, dtype=self.dtype)
        # Small last layer: the initial policy is close to uniform (as CleanRL's std=0.01 init).
        self.policy.params[-2][...] *= 0.01
        self.policy_opt = optim.Adam(self.policy.flat_params, self.policy.flat_grads, lr=c.lr, eps=c.adam_eps)
        self.value = None
        self.value_opt = None
        if c.baseline == "value":
            self.value = MLP([d, *c.value_hidden_sizes, 1], activation=c.activation, seed=rng, dtype=self.dtype)
            self.value_opt = optim.Adam(self.value.flat_params, self.value.flat_grads, lr=c.value_lr,
                                        eps=c.adam_eps)
        if c.lr_schedule == "linear":
            self.lr_factor = schedules.linear(1.0, c.lr_end / c.lr, c.lr_anneal_steps)
        else:
            self.lr_factor = schedules.constant(1.0)
        self._grad_clip = c.max_grad_norm if c.max_grad_norm > 0 else None
        # Without a critic, unfinished episodes wait in the buffer for the next update (module docstring).
        self.rollout = RolloutBuffer(c.rollout_steps, n, d, obs_dtype=self.dtype,
                                     carry_unfinished=self.value is None)
        self.updates = 0
        self.last_batch: dict[str, np.ndarray] = {}   # advantages and mask of the last update (inspection)

    @classmethod
    def memory(cls, config: PGConfig, env_info: EnvInfo) -> list[tuple[str, str, int]]:
        d, k, n = env_info.obs_dim, env_info.num_actions, env_info.num_envs
        policy = trained_network_bytes([d, *config.hidden_sizes, k], config.dtype)
        rollout = RolloutBuffer.nbytes(config.rollout_steps, n, d, config.dtype)
        out = [("agent.hidden_sizes", "the policy network and Adam", policy),
               ("run.num_envs", "the rollout buffer", rollout)]
        if config.baseline == "value":
            out.append(("agent.value_hidden_sizes", "the value network and Adam",
                        trained_network_bytes([d, *config.value_hidden_sizes, 1], config.dtype)))
        return out

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        """A sample of softmax(policy(obs)) per row (step is not needed); greedy: the argmax, no draw."""
        logits = self.policy.predict(obs)
        if greedy:
            return logits.argmax(axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        cdf = np.cumsum(logits, axis=1)
        u = self.rng.random(len(obs))
        u *= cdf[:, -1]
        return (cdf < u[:, None]).sum(axis=1)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        self.rollout.add(obs, actions, rewards, next_obs, terminated, truncated, valid)

    # ---------------------------------------------------------------- learning
    def learn(self, step: int) -> dict[str, float]:
        """Once a rollout is full: its advantages, one policy step, the critic's steps; a new rollout."""
        if not self.rollout.ready:
            return {}
        batch = self.rollout.batch()
        adv, use, values, targets = self.advantages(batch)
        metrics: dict[str, float] = {}
        if use.any():
            self.last_batch = {"advantages": adv, "mask": use}
            factor = self.lr_factor(step)
            rows = use.reshape(-1)                                   # row-major, as adv[use]
            obs = batch.obs.reshape(-1, self.env_info.obs_dim)[rows]   # (R, d): the R rows in use
            actions = batch.actions.reshape(-1)[rows]
            if values is not None:
                values, targets = values[use], targets[use]
            lr, value_lr = self.config.lr * factor, self.config.value_lr * factor
            if self.config.clip_coef > 0:
                metrics = self.clipped_epochs(obs, actions, adv[use], values, targets, lr, value_lr)
            else:
                metrics = self.policy_step(obs, actions, adv[use], lr)
                if self.value is None:
                    metrics["losses/value_loss"] = 0.0
                else:
                    metrics.update(self.critic_steps(obs, values, targets, value_lr))
            self.updates += 1
        self.rollout.reset()
        return metrics

    def advantages(self, batch: Rollout) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(A, use, V, R), each (T, n): the advantages, the rows the losses use, and with a critic V(s_t)
        and the value targets R_t = A_t + V(s_t) (None without one). See the module docstring."""
        c = self.config
        T, n = batch.shape
        values = targets = None
        if self.value is not None:
            values = self.value.predict(batch.obs.reshape(T * n, -1)).reshape(T, n)
            next_values = self.value.predict(batch.next_obs.reshape(T * n, -1)).reshape(T, n)
            adv, targets = gae(batch.rewards, values, next_values, batch.terminated, batch.truncated, c.gamma,
                               c.gae_lambda, batch.valid)
            use = batch.valid
        else:
            adv = reward_to_go(batch.rewards, batch.terminated, batch.truncated, c.gamma, valid=batch.valid)
            # Only finished episodes: the rows of a running one are carried over to the next update.
            use = batch.valid & episode_complete(batch.terminated, batch.truncated, lengths=batch.lengths)
        n_use = int(use.sum())
        if n_use > 0:
            sel = adv[use]
            if self.value is None and c.baseline == "mean":
                adv = adv - sel.mean()
                sel = adv[use]
            if c.normalize_advantages and n_use > 1:
                adv = (adv - sel.mean()) / (sel.std() + 1e-8)
        return adv, use, values, targets

    def policy_step(self, obs: np.ndarray, actions: np.ndarray, adv: np.ndarray, lr: float,
                    old_log_probs: np.ndarray | None = None) -> dict[str, float]:
        """One gradient step on the policy loss over R rows: obs (R, d), actions, adv and old_log_probs (R,)."""
        metrics = self.policy_loss(obs, actions, adv, old_log_probs)
        metrics["losses/grad_norm"] = optim.clip_grad_norm(self.policy.flat_grads, self._grad_clip)
        self.policy_opt.lr = lr
        self.policy_opt.step()
        metrics["charts/learning_rate"] = lr
        return metrics

    def critic_step(self, obs: np.ndarray, target: np.ndarray) -> tuple[float, float]:
        """One step regressing V(obs) (R, d) onto target (R, 1) at the optimizer's lr: (loss, grad norm)."""
        loss = self.value_loss(self.value.forward(obs), target)
        grad_norm = optim.clip_grad_norm(self.value.flat_grads, self._grad_clip)
        self.value_opt.step()
        return loss, grad_norm

    def critic_steps(self, obs: np.ndarray, values: np.ndarray, targets: np.ndarray,
                     lr: float) -> dict[str, float]:
        """``value_steps`` full-batch steps regressing V(s) onto the targets over the rows in use.

        obs (R, d); values (R,) = V(s) before the steps (for the explained variance); targets (R,).
        Metrics: the first step's loss and gradient norm.
        """
        target = targets.reshape(-1, 1).astype(self.dtype)
        self.value_opt.lr = lr
        loss, grad_norm = self.critic_step(obs, target)
        for _ in range(self.config.value_steps - 1):
            self.critic_step(obs, target)
        return {"losses/value_loss": loss, "losses/value_grad_norm": grad_norm,
                "losses/explained_variance": _explained_variance(values, targets)}

    def clipped_epochs(self, obs: np.ndarray, actions: np.ndarray, adv: np.ndarray, values: np.ndarray | None,
                       targets: np.ndarray | None, lr: float, value_lr: float) -> dict[str, float]:
        """The clipped-surrogate update over the R rows in use (module docstring): obs (R, d); actions, adv,
        and with a critic V(s) before the update and the value targets, (R,).

        Metrics: means over every minibatch step.
        """
        c = self.config
        old_log_probs = self.log_probs(obs, actions)
        target = None if targets is None else targets.reshape(-1, 1).astype(self.dtype)
        if self.value is not None:
            self.value_opt.lr = value_lr
        sums: dict[str, float] = {}
        n_steps = 0
        for _ in range(c.update_epochs):
            for idx in np.array_split(self.rng.permutation(len(actions)), min(c.num_minibatches, len(actions))):
                metrics = self.policy_step(obs[idx], actions[idx], adv[idx], lr, old_log_probs[idx])
                if self.value is not None:
                    metrics["losses/value_loss"], metrics["losses/value_grad_norm"] = \
                        self.critic_step(obs[idx], target[idx])
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                n_steps += 1
        metrics = {key: value / n_steps for key, value in sums.items()}
        if self.value is None:
            metrics["losses/value_loss"] = 0.0
        else:
            metrics["losses/explained_variance"] = _explained_variance(values, targets)
        return metrics

    def log_probs(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """log pi(a_i | s_i) under the current policy, (R,)."""
        logp = log_softmax(self.policy.predict(obs))
        return logp[np.arange(len(actions)), actions]

    def policy_loss(self, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray,
                    old_log_probs: np.ndarray | None = None, backward: bool = True) -> dict[str, float]:
        """The policy loss on a batch of R rows and its statistics; with ``backward`` the loss's gradient
        is written to the grads (replacing what they held).

        REINFORCE (``old_log_probs`` None): loss = -mean_i A_i log pi(a_i | s_i) - ent_coef * mean_i H_i,
        ``softmax_cross_entropy`` with the advantages as its sample weights. Otherwise the clipped
        surrogate against the old log-probabilities, minus the same entropy bonus.
        obs (R, d), actions, advantages A and old_log_probs (R,).
        """
        logits = self.policy.forward(obs) if backward else self.policy.predict(obs)
        adv = advantages.astype(logits.dtype)
        metrics: dict[str, float] = {}
        if old_log_probs is None:
            pl, dlogits = losses.softmax_cross_entropy(logits, actions, weights=adv)
        else:
            pl, dlogits, metrics["losses/clipfrac"], metrics["losses/approx_kl"] = clipped_surrogate(
                logits, actions, old_log_probs, adv, self.config.clip_coef)
        ent, dent = losses.entropy(logits.astype(np.float64))
        ent_coef = self.config.ent_coef
        if backward:
            if ent_coef > 0:
                dlogits -= (ent_coef * dent).astype(dlogits.dtype)
            self.policy.backward(dlogits, input_grad=False, accumulate=False)
        metrics["losses/policy_loss"] = pl - ent_coef * ent
        metrics["losses/entropy"] = ent
        return metrics

    def value_loss(self, pred: np.ndarray, target: np.ndarray) -> float:
        """Critic loss, the mean l2 or huber of ``pred`` (R, 1) = the last ``value.forward`` against
        ``target`` (R, 1); writes its gradient to the grads (replacing what they held)."""
        c = self.config
        if c.value_loss == "huber":
            loss, dv = losses.huber(pred, target, delta=c.huber_delta)
        else:
            loss, dv = losses.l2(pred, target)
        self.value.backward(dv, input_grad=False, accumulate=False)
        return loss

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = {
            "policy": self.policy.state_dict(),
            "policy_opt": self.policy_opt.state_dict(),
            "rng": rng_state(self.rng),
            "updates": self.updates,
            "rollout": self.rollout.state_dict(),
        }
        if self.value is not None:
            state["value"] = self.value.state_dict()
            state["value_opt"] = self.value_opt.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if (self.value is None) != ("value" not in state):
            raise ValueError("checkpoint baseline does not match the config's baseline")
        self.policy.load_state_dict(state["policy"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
            self.value_opt.load_state_dict(state["value_opt"])
        set_rng_state(self.rng, state["rng"])
        self.updates = int(state["updates"])
        self.rollout.load_state_dict(state["rollout"])

    def networks(self) -> dict:
        nets = {"policy": self.policy}
        if self.value is not None:
            nets["value"] = self.value
        return nets

    def optimizers(self) -> dict:
        opts = {"policy": self.policy_opt}
        if self.value is not None:
            opts["value"] = self.value_opt
        return opts

    def gradient_checks(self, batch: dict[str, np.ndarray]) -> dict:
        """{loss name: (network, closure)} for ``rlnn check-gradients``, through the training code path.

        The batch is one env's transitions in time order; its normalized discounted reward-to-go
        serves as the advantages (any fixed weights exercise the same backward pass) and as the
        critic's targets.
        """
        c = self.config
        n = len(batch["actions"])
        obs = batch["obs"].astype(self.dtype)
        col = lambda x: np.asarray(x).reshape(n, 1)
        returns = reward_to_go(col(batch["rewards"]), col(batch["terminated"]), col(batch["truncated"]),
                               c.gamma).reshape(n)
        adv = (returns - returns.mean()) / (returns.std() + 1e-8)

        def policy_closure():
            return self.policy_loss(obs, batch["actions"], adv)["losses/policy_loss"]

        checks = {"policy_loss": (self.policy, policy_closure)}
        if c.clip_coef > 0:
            # Old log-probabilities shifted by +-2 clip_coef, so that rows land on both sides of the clip.
            shift = np.random.default_rng(0).choice([-2.0, 0.0, 2.0], size=n) * c.clip_coef
            old = self.log_probs(obs, batch["actions"]) + shift

            def clipped_closure():
                return self.policy_loss(obs, batch["actions"], adv, old)["losses/policy_loss"]

            checks["clipped_surrogate"] = (self.policy, clipped_closure)
        if self.value is not None:
            target = returns.reshape(n, 1).astype(self.dtype)

            def value_closure():
                return self.value_loss(self.value.forward(obs), target)

            checks["value_loss"] = (self.value, value_closure)
        return checks


def clipped_surrogate(logits: np.ndarray, actions: np.ndarray, old_log_probs: np.ndarray, advantages: np.ndarray,
                      clip_coef: float) -> tuple[float, np.ndarray, float, float]:
    """PPO's clipped surrogate for a softmax policy: (loss, dloss/dlogits (B, K), clipfrac, approx_kl).

    logits (B, K), actions (B,) ints, old_log_probs and advantages A (B,):

        r_i    = pi(a_i | s_i) / pi_old(a_i | s_i) = exp(log p_i[a_i] - old_i)
        loss   = -mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i)
        dloss/dz_i = r_i A_i (p_i - onehot(a_i)) / B   where the min is the unclipped term, else 0

    REINFORCE's "one-hot(action) minus probabilities, scaled by the advantage", importance-weighted by
    r_i (at r = 1 it is ``softmax_cross_entropy``'s gradient), and switched off once the ratio has
    moved past the clip in the direction the advantage favours (the clipped term is constant in z).
    clipfrac: the fraction of rows with |r - 1| > eps; approx_kl: mean (r - 1) - log r (Schulman's k3).
    """
    batch = len(actions)
    rows = np.arange(batch)
    logp = log_softmax(logits)
    log_ratio = logp[rows, actions] - old_log_probs
    ratio = np.exp(log_ratio)
    unclipped = ratio * advantages
    # Ufuncs, not np.clip / np.mean: their Python dispatch costs more than the math on a minibatch.
    clipped = np.minimum(np.maximum(ratio, 1 - clip_coef), 1 + clip_coef) * advantages
    loss = -float(np.add.reduce(np.minimum(unclipped, clipped))) / batch
    weight = np.where(unclipped <= clipped, unclipped, 0) / batch      # r_i A_i / B on rows with a gradient
    grad = np.exp(logp, out=logp)
    grad[rows, actions] -= 1                                           # p - onehot(a)
    grad *= weight[:, None].astype(grad.dtype, copy=False)
    clipfrac = np.count_nonzero(np.abs(ratio - 1) > clip_coef) / batch
    approx_kl = float(np.add.reduce(ratio - 1 - log_ratio)) / batch
    return loss, grad, clipfrac, approx_kl


def _explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = float(np.var(target))
    return 0.0 if var == 0 else 1.0 - float(np.var(target - pred)) / var
