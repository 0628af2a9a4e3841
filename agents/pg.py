"""Policy gradient (REINFORCE with reward-to-go, optional learned value baseline and GAE).

The policy is a softmax MLP over the discrete actions: ``logits = policy(obs)``, actions are sampled
from ``softmax(logits)`` with the agent's own generator while training, and ``argmax(logits)`` when
greedy (no random number is drawn then, so evaluation never shifts the training stream).

One update per rollout of ``rollout_steps`` vector steps (``rollout_steps * num_envs`` rows):

    advantages A_t  (see below), normalized over the batch if ``normalize_advantages``
    policy loss     = softmax_cross_entropy(logits, actions, weights=A) - ent_coef * entropy
                    = -mean_t A_t log pi(a_t | s_t) - ent_coef * mean_t H(pi(. | s_t))
    value loss      = l2 or huber(V(s_t), R_t)                      (baseline = "value" only)

both means taken over the *valid* rows only (the no-op reset rows of NEXT_STEP autoreset get weight
0). One gradient step on the policy per rollout (REINFORCE is on-policy: a second step would use data
of an older policy); the critic may take ``value_steps`` steps on the same batch, which is just
regression. Gradients are clipped to a global norm ``max_grad_norm`` per network.

Advantages, by ``baseline`` (``agents.returns`` has the formulas):

* ``"value"``: GAE(lambda) with a learned V. A truncated episode (time limit) and an episode still
  running at the end of the rollout are bootstrapped with ``V(next_obs)``; a terminated one is not.
  ``gae_lambda = 1`` is plain reward-to-go minus V(s_t). Value targets R_t = A_t + V(s_t).
* ``"none"`` / ``"mean"``: plain discounted reward-to-go G_t (minus the batch mean of G for
  ``"mean"``). Without a critic there is nothing to bootstrap with, so:
  - truncation is treated as the end of the episode: G after the time limit is 0. That is the
    return of the time-limited task the episode statistics measure (CartPole-v1: at most 500).
  - an episode still running when the rollout ends has an unknown reward-to-go, so its rows are
    *carried over*: they stay in the rollout buffer and join the next update, once the episode
    has finished and G is exact. (Their actions came from the policy one update older: a small,
    bounded off-policy lag, preferred here to biased truncated returns.) The buffer grows if an
    episode outlasts it.

Learning rate: ``lr`` constant, or ``lr_schedule = "linear"`` from ``lr`` to ``lr_end`` over
``lr_anneal_steps`` env steps (absolute: the agent does not know the run's total_steps), the value
optimizer following the same factor relative to ``value_lr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.base import (EnvInfo, check_at_least, check_choice, check_network, check_positive, check_range,
                         rng_state, set_rng_state)
from agents.returns import episode_complete, gae, reward_to_go
from rlnn import MLP, losses, optim, schedules

BASELINES = ("none", "mean", "value")
LR_SCHEDULES = ("constant", "linear")
DTYPES = ("float32", "float64")


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

    def validate(self) -> None:
        check_network(self)
        check_network(self, "value_hidden_sizes")
        check_choice(self, "dtype", DTYPES)
        check_choice(self, "baseline", BASELINES)
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_choice(self, "value_loss", ("l2", "huber"))
        check_range(self, ("gamma", "gae_lambda"), 0.0, 1.0)
        check_at_least(self, ("rollout_steps", "lr_anneal_steps", "value_steps"), 1)
        check_positive(self, ("lr", "value_lr", "adam_eps", "huber_delta"))
        check_at_least(self, ("lr_end", "ent_coef", "max_grad_norm"), 0)


class PGAgent:
    name = "pg"
    requires_discrete = True

    def __init__(self, config: PGConfig, env: EnvInfo, rng: np.random.Generator):
        config.validate()
        self.config, self.env, self.rng = config, env, rng
        c = config
        self.dtype = np.dtype(c.dtype)
        d, k, n = env.obs_dim, env.num_actions, env.num_envs
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
        self.carry = c.baseline != "value"   # unfinished episodes wait for the next update
        self._alloc(c.rollout_steps)
        self.t = 0                           # observe() calls since the last update
        self.offset = np.zeros(n, np.int64)  # carried-over rows at the top of each column
        self.steps = 0                       # valid transitions observed
        self.updates = 0
        self._cols = np.arange(n)
        self.last_batch: dict[str, np.ndarray] = {}   # advantages and mask of the last update (inspection)
        self._sync_layout()

    def _alloc(self, cap: int, keep: int = 0) -> None:
        n, d = self.env.num_envs, self.env.obs_dim
        new = {
            "obs": np.zeros((cap, n, d), self.dtype),
            "next_obs": np.zeros((cap, n, d), self.dtype),
            "actions": np.zeros((cap, n), np.int64),
            "rewards": np.zeros((cap, n), np.float64),
            "terminated": np.zeros((cap, n), bool),
            "truncated": np.zeros((cap, n), bool),
            "valid": np.zeros((cap, n), bool),
        }
        if keep:
            for key, arr in new.items():
                arr[:keep] = getattr(self, key)[:keep]
        for key, arr in new.items():
            setattr(self, key, arr)
        self.cap = cap

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:
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
        if self.t >= self._room:
            raise RuntimeError("PGAgent.observe called again before learn() consumed the full rollout")
        if self._ragged:
            idx = (self.offset + self.t, self._cols)
        else:
            idx = self.t
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.truncated[idx] = truncated
        self.valid[idx] = valid
        self.t += 1
        self.steps += int(np.count_nonzero(valid))

    # ---------------------------------------------------------------- learning
    def learn(self, step: int) -> dict[str, float]:
        if self.t < self.config.rollout_steps:
            return {}
        c = self.config
        n, d = self.env.num_envs, self.env.obs_dim
        lengths = self.offset + self.t
        T = int(lengths.max())
        exists = np.arange(T)[:, None] < lengths[None, :]
        valid = self.valid[:T] & exists
        term, trunc = self.terminated[:T] & exists, self.truncated[:T] & exists
        rewards = self.rewards[:T] * exists
        obs_flat = self.obs[:T].reshape(T * n, d)
        factor = self.lr_factor(step)
        metrics: dict[str, float] = {}

        if self.value is not None:
            values = self.value.forward(obs_flat).reshape(T, n)
            next_values = self.value.predict(self.next_obs[:T].reshape(T * n, d)).reshape(T, n)
            adv, targets = gae(rewards, values, next_values, term, trunc, c.gamma, c.gae_lambda, valid)
            use = valid
        else:
            adv = reward_to_go(rewards, term, trunc, c.gamma, valid=valid)
            use = valid & episode_complete(term, trunc, lengths=lengths)
        n_use = int(use.sum())

        if n_use > 0:
            sel = adv[use]
            if self.value is None and c.baseline == "mean":
                adv = adv - sel.mean()
                sel = adv[use]
            if c.normalize_advantages and n_use > 1:
                adv = (adv - sel.mean()) / (sel.std() + 1e-8)
            w = use.reshape(-1) / n_use            # mean over the rows in use
            self.last_batch = {"advantages": adv, "mask": use}
            # -- policy: one gradient step
            self.policy.zero_grad()
            pl, ent = self.policy_loss(obs_flat, self.actions[:T].reshape(-1), adv.reshape(-1) * w, w)
            gn = optim.clip_grad_norm(self.policy.flat_grads, self._grad_clip)
            self.policy_opt.lr = c.lr * factor
            self.policy_opt.step()
            metrics = {"losses/policy_loss": pl, "losses/entropy": ent,
                       "losses/grad_norm": gn, "charts/learning_rate": self.policy_opt.lr}
            # -- critic
            if self.value is not None:
                target = targets.reshape(-1, 1).astype(self.dtype)
                vw = (w * (T * n)).astype(self.dtype)
                self.value_opt.lr = c.value_lr * factor
                for i in range(c.value_steps):
                    self.value.zero_grad()
                    pred = self.value.forward(obs_flat) if i > 0 else values.reshape(-1, 1)
                    vl = self.value_loss(pred, target, vw)   # step 0: the forward pass cached for the values
                    vgn = optim.clip_grad_norm(self.value.flat_grads, self._grad_clip)
                    self.value_opt.step()
                    if i == 0:
                        metrics["losses/value_loss"] = vl
                        metrics["losses/value_grad_norm"] = vgn
                metrics["losses/explained_variance"] = _explained_variance(values[use], targets[use])
            else:
                metrics["losses/value_loss"] = 0.0
            self.updates += 1

        self._reset_rollout(T, lengths, term, trunc)
        return metrics

    def policy_loss(self, obs: np.ndarray, actions: np.ndarray, weights: np.ndarray, ent_weights: np.ndarray,
                    backward: bool = True) -> tuple[float, float]:
        """(loss, entropy) of the policy on a batch; with ``backward`` its gradient is added to the grads.

        loss = -sum_i weights_i log pi(a_i | s_i) - ent_coef * sum_i ent_weights_i H(pi(. | s_i)).
        The learner passes weights = advantage / n_valid and ent_weights = 1 / n_valid on valid rows
        (0 elsewhere), i.e. means over the valid rows. Implemented with
        ``softmax_cross_entropy(logits, actions, weights=B * weights)``, which divides by the batch size B.
        """
        logits = self.policy.forward(obs) if backward else self.policy.predict(obs)
        B = len(actions)
        pl, dlogits = losses.softmax_cross_entropy(logits, actions, weights=(weights * B).astype(logits.dtype))
        ent, dent = losses.entropy(logits.astype(np.float64), weights=ent_weights * B)
        ent_coef = self.config.ent_coef
        if backward:
            if ent_coef > 0:
                dlogits -= (ent_coef * dent).astype(dlogits.dtype)
            self.policy.backward(dlogits)
        return pl - ent_coef * ent, ent

    def value_loss(self, pred: np.ndarray, target: np.ndarray, weights: np.ndarray) -> float:
        """Critic loss (l2 or huber) of ``pred`` = the last ``value.forward``; adds its gradient to the grads."""
        c = self.config
        if c.value_loss == "huber":
            loss, dv = losses.huber(pred, target, delta=c.huber_delta, weights=weights)
        else:
            loss, dv = losses.l2(pred, target, weights=weights)
        self.value.backward(dv)
        return loss

    def _reset_rollout(self, T: int, lengths: np.ndarray, term: np.ndarray, trunc: np.ndarray) -> None:
        self.t = 0
        if not self.carry:
            return
        done = term | trunc
        new_offset = np.zeros_like(self.offset)
        for i in range(self.env.num_envs):
            hits = np.flatnonzero(done[:, i])
            start = int(hits[-1]) + 1 if hits.size else 0
            if start < lengths[i] and not self.valid[start, i]:
                start += 1                   # the reset row after the episode's end: nothing to keep
            new_offset[i] = int(lengths[i]) - start
        need = int(new_offset.max()) + self.config.rollout_steps
        if need > self.cap:
            self._alloc(need, keep=T)
        for i in np.flatnonzero(new_offset):
            k, end = int(new_offset[i]), int(lengths[i])
            for key in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "valid"):
                arr = getattr(self, key)
                arr[:k, i] = arr[end - k:end, i].copy()
        self.offset = new_offset
        self._sync_layout()

    def _sync_layout(self) -> None:
        """Cache what observe() needs: rows left per column, and whether columns are offset."""
        self._ragged = bool(self.offset.any())
        self._room = self.cap - int(self.offset.max())

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = {
            "policy": self.policy.state_dict(),
            "policy_opt": self.policy_opt.state_dict(),
            "rng": rng_state(self.rng),
            "counters": {"t": self.t, "steps": self.steps, "updates": self.updates, "cap": self.cap},
            "offset": self.offset.copy(),
            "rollout": {key: getattr(self, key).copy() for key in
                        ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "valid")},
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
        counters = state["counters"]
        self.t, self.steps, self.updates = int(counters["t"]), int(counters["steps"]), int(counters["updates"])
        cap = int(counters["cap"])
        if cap != self.cap:
            self._alloc(cap)
        for key, arr in state["rollout"].items():
            mine = getattr(self, key)
            if np.shape(arr) != mine.shape:
                raise ValueError(f"rollout {key} has shape {np.shape(arr)}, expected {mine.shape}")
            mine[...] = arr
        self.offset = np.asarray(state["offset"], np.int64).copy()
        self._sync_layout()

    def networks(self) -> dict:
        nets = {"policy": self.policy}
        if self.value is not None:
            nets["value"] = self.value
        return nets

    output_kinds = {"policy": "logits", "value": "values"}

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
        w = np.full(n, 1.0 / n)

        def policy_closure():
            self.policy.zero_grad()
            return self.policy_loss(obs, batch["actions"], adv * w, w)[0]

        checks = {"policy_loss": (self.policy, policy_closure)}
        if self.value is not None:
            target = returns.reshape(n, 1).astype(self.dtype)

            def value_closure():
                self.value.zero_grad()
                return self.value_loss(self.value.forward(obs), target, np.ones(n, self.dtype))

            checks["value_loss"] = (self.value, value_closure)
        return checks


def _explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = float(np.var(target))
    return 0.0 if var == 0 else 1.0 - float(np.var(target - pred)) / var
