"""What the on-policy agents (``pg``: REINFORCE, ``ppo``) share: the policy, the critic, the rollout and
the advantages. Each of them only says how it turns a rollout into policy steps (``update``).

The policy is an MLP followed by a head for the env's action space (``agents.heads``): a softmax over
Discrete actions, a diagonal Gaussian with a learned log-std over a Box. Actions are sampled with the
agent's own generator while training; greedy acting takes the head's mode (argmax, or the mean) and draws
nothing, so evaluation never shifts the training stream. Over a Box the env gets the sample clipped into
the bounds, and the rollout keeps the unclipped sample, whose log-probability the learner scores.

One update per rollout of ``rollout_steps`` vector steps (``rollout_steps * num_envs`` rows, kept by
``agents.rollout.RolloutBuffer``): ``advantages``, then the algorithm's ``update`` on the rows *in use*
only, so its means are plain means and the advantages the policy loss's only weights. Not in use: the
no-op reset rows of NEXT_STEP autoreset, and without a critic the rows of unfinished episodes (carried
over, see below). Gradients are clipped to a global norm ``max_grad_norm`` per network (the policy's
together with the head's log-std).

Advantages, by baseline (``agents.returns`` has the formulas):

* ``"value"``: GAE(lambda) with a learned V. A truncated episode (time limit) and an episode still
  running at the end of the rollout are bootstrapped with ``V(next_obs)``; a terminated one is not.
  ``gae_lambda = 1`` is plain reward-to-go minus V(s_t). Value targets R_t = A_t + V(s_t).
* ``"none"`` / ``"mean"`` (``pg`` only): plain discounted reward-to-go G_t (minus the batch mean of G
  for ``"mean"``). Without a critic there is nothing to bootstrap with, so:
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
from typing import Any

import numpy as np

from agents.base import (NETWORK_DTYPES, Agent, EnvInfo, check_at_least, check_choice, check_network,
                         check_positive, check_range, rng_state, set_rng_state, trained_network_bytes)
from agents.heads import policy_head
from agents.returns import episode_complete, gae, reward_to_go
from agents.rollout import Rollout, RolloutBuffer
from rlnn import MLP, losses, optim, schedules

LR_SCHEDULES = ("constant", "linear")


@dataclass
class OnPolicyConfig:
    """The hyperparameters PG and PPO share (their configs add their own)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])   # widths of the policy's hidden layers
    activation: str = "tanh"             # hidden-layer activation of both networks (rlnn.activations)
    dtype: str = "float32"               # network precision: float32 (faster) or float64
    gamma: float = 0.99                  # discount factor of the returns
    rollout_steps: int = 64              # vector steps per update (x num_envs rows)
    gae_lambda: float = 0.95             # GAE(lambda); 1.0 = reward-to-go minus V (value baseline only)
    normalize_advantages: bool = True    # advantages scaled to mean 0, std 1 over each update's rows
    lr: float = 2e-3                     # policy Adam learning rate (the log-std's too)
    lr_schedule: str = "linear"          # constant | linear (lr -> lr_end over lr_anneal_steps)
    lr_end: float = 2e-4                 # learning rate at the end of a linear schedule (value_lr scales alike)
    lr_anneal_steps: int = 200_000       # env steps of the linear schedule
    adam_eps: float = 1e-8               # Adam's epsilon (torch.optim.Adam's eps)
    ent_coef: float = 0.0                # weight of the entropy bonus in the policy loss
    max_grad_norm: float = 0.5           # global-norm clipping per network; 0 = off
    log_std_init: float = 0.0            # Box actions: the Gaussian's initial log standard deviation
    value_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])   # widths of the critic V(s)'s hidden layers
    value_lr: float = 2e-3               # critic Adam learning rate
    value_loss: str = "l2"               # l2 | huber: the critic's regression loss onto the returns
    huber_delta: float = 10.0            # where the Huber value loss turns from quadratic to linear

    def validate(self) -> None:
        check_network(self)
        check_network(self, "value_hidden_sizes")
        check_choice(self, "dtype", NETWORK_DTYPES)
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_choice(self, "value_loss", ("l2", "huber"))
        check_range(self, ("gamma", "gae_lambda"), 0.0, 1.0)
        check_at_least(self, ("rollout_steps", "lr_anneal_steps"), 1)
        check_positive(self, ("lr", "value_lr", "adam_eps", "huber_delta"))
        check_at_least(self, ("lr_end", "ent_coef", "max_grad_norm"), 0)


class OnPolicyAgent(Agent):
    """The policy (MLP + head), the critic, the rollout, acting, advantages, state; ``update`` is the
    algorithm's."""

    action_kinds = ("discrete", "continuous")

    def __init__(self, config: OnPolicyConfig, env_info: EnvInfo, rng: np.random.Generator, baseline: str):
        config.validate()
        super().__init__(config, env_info, rng)
        c = config
        self.dtype = np.dtype(c.dtype)
        self.baseline = baseline
        d, n = env_info.obs_dim, env_info.num_envs
        self.head = policy_head(env_info, c.log_std_init, self.dtype)
        self.policy = MLP([d, *c.hidden_sizes, self.head.num_outputs], activation=c.activation, seed=rng,
                          dtype=self.dtype)
        # Small last layer: the initial policy is close to uniform, or its mean close to 0 (CleanRL's std=0.01 init).
        self.policy.params[-2][...] *= 0.01
        self.policy_opt = optim.Adam(self.policy.flat_params, self.policy.flat_grads, lr=c.lr, eps=c.adam_eps)
        self.head_opt = None
        if self.head.flat_params.size:
            self.head_opt = optim.Adam(self.head.flat_params, self.head.flat_grads, lr=c.lr, eps=c.adam_eps)
        self.output_kinds = {"policy": self.head.output_kind, "value": "values"}
        self.value = None
        self.value_opt = None
        if baseline == "value":
            self.value = MLP([d, *c.value_hidden_sizes, 1], activation=c.activation, seed=rng, dtype=self.dtype)
            self.value_opt = optim.Adam(self.value.flat_params, self.value.flat_grads, lr=c.value_lr,
                                        eps=c.adam_eps)
        if c.lr_schedule == "linear":
            self.lr_factor = schedules.linear(1.0, c.lr_end / c.lr, c.lr_anneal_steps)
        else:
            self.lr_factor = schedules.constant(1.0)
        self._grad_clip = c.max_grad_norm if c.max_grad_norm > 0 else None
        self._policy_grads = [self.policy.flat_grads, self.head.flat_grads]    # clipped as one vector
        # Without a critic, unfinished episodes wait in the buffer for the next update (module docstring).
        action_shape = () if env_info.discrete else (env_info.action_dim,)
        self.rollout = RolloutBuffer(c.rollout_steps, n, d, obs_dtype=self.dtype, carry_unfinished=self.value is None,
                                     action_shape=action_shape,
                                     action_dtype=np.int64 if env_info.discrete else self.dtype)
        self.updates = 0
        self.last_batch: dict[str, np.ndarray] = {}   # advantages and mask of the last update (inspection)
        self._sampled = self._given = None            # the last act()'s sample and what the env was given

    @classmethod
    def memory(cls, config: OnPolicyConfig, env_info: EnvInfo) -> list[tuple[str, str, int]]:
        d, n = env_info.obs_dim, env_info.num_envs
        outputs = env_info.num_actions if env_info.discrete else 2 * env_info.action_dim   # upper bound
        action_shape, action_dtype = ((), np.int64) if env_info.discrete else ((env_info.action_dim,), config.dtype)
        out = [("agent.hidden_sizes", "the policy network and Adam",
                trained_network_bytes([d, *config.hidden_sizes, outputs], config.dtype)),
               ("run.num_envs", "the rollout buffer",
                RolloutBuffer.nbytes(config.rollout_steps, n, d, config.dtype, action_shape, action_dtype))]
        if getattr(config, "baseline", "value") == "value":
            out.append(("agent.value_hidden_sizes", "the value network and Adam",
                        trained_network_bytes([d, *config.value_hidden_sizes, 1], config.dtype)))
        return out

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        """A sample of the policy per row (step is not needed); greedy: the head's mode, no draw."""
        out = self.policy.predict(obs)
        if greedy:
            return self.head.env_actions(self.head.mode(out))
        self._sampled = self.head.sample(out, self.rng)
        self._given = self.head.env_actions(self._sampled)
        return self._given

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        # The actions act() just returned are stored as the sample they came from (unclipped over a Box).
        stored = self._sampled if actions is self._given else actions
        self.rollout.add(obs, stored, rewards, next_obs, terminated, truncated, valid)

    # ---------------------------------------------------------------- learning
    def learn(self, step: int) -> dict[str, float]:
        """Once a rollout is full: its advantages, the algorithm's update; a new rollout."""
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
            actions = batch.actions.reshape(len(rows), *batch.actions.shape[2:])[rows]
            if values is not None:
                values, targets = values[use], targets[use]
            metrics = self.update(obs, actions, adv[use], values, targets, self.config.lr * factor,
                                  self.config.value_lr * factor)
            if self.head.flat_params.size:
                metrics["charts/action_std"] = float(np.exp(self.head.flat_params).mean())
            self.updates += 1
        self.rollout.reset()
        return metrics

    def update(self, obs: np.ndarray, actions: np.ndarray, adv: np.ndarray, values: np.ndarray | None,
               targets: np.ndarray | None, lr: float, value_lr: float) -> dict[str, float]:
        """The algorithm's steps on the R rows in use: obs (R, d), actions (R,) or (R, m), advantages (R,),
        with a critic V(s) before the update and the value targets (R,), else None. Returns its metrics."""
        raise NotImplementedError

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
            if self.baseline == "mean":
                adv = adv - sel.mean()
                sel = adv[use]
            if c.normalize_advantages and n_use > 1:
                adv = (adv - sel.mean()) / (sel.std() + 1e-8)
        return adv, use, values, targets

    def policy_gradient(self, out: np.ndarray, loss: float, grads: tuple[np.ndarray, np.ndarray],
                        backward: bool) -> dict[str, float]:
        """The policy loss minus the entropy bonus; with ``backward`` its gradient goes into the grads of
        the policy and the head (replacing what they held). out = policy(obs) (R, k); ``loss`` and
        ``grads`` = (d loss / d out, d loss / d head params) of the algorithm's policy loss."""
        dout, dparams = grads
        ent, (dent, dent_params) = self.head.entropy(out)
        ent_coef = self.config.ent_coef
        if backward:
            if ent_coef > 0:
                dout -= (ent_coef * dent).astype(dout.dtype)
                dparams = dparams - ent_coef * dent_params
            self.policy.backward(dout, input_grad=False, accumulate=False)
            self.head.flat_grads[...] = dparams
        return {"losses/policy_loss": loss - ent_coef * ent, "losses/entropy": ent}

    def policy_step(self, lr: float) -> dict[str, float]:
        """One Adam step of the policy (and the head's log-std) from the gradient a policy loss left."""
        grad_norm = optim.clip_grad_norm(self._policy_grads, self._grad_clip)
        self.policy_opt.lr = lr
        self.policy_opt.step()
        if self.head_opt is not None:
            self.head_opt.lr = lr
            self.head_opt.step()
        return {"losses/grad_norm": grad_norm, "charts/learning_rate": lr}

    def log_probs(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """log pi(a_i | s_i) under the current policy, (R,)."""
        return self.head.log_prob(self.policy.predict(obs), actions)

    def critic_step(self, obs: np.ndarray, target: np.ndarray) -> tuple[float, float]:
        """One step regressing V(obs) (R, d) onto target (R, 1) at the optimizer's lr: (loss, grad norm)."""
        loss = self.value_loss(self.value.forward(obs), target)
        grad_norm = optim.clip_grad_norm(self.value.flat_grads, self._grad_clip)
        self.value_opt.step()
        return loss, grad_norm

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
        if self.head_opt is not None:
            state["head"] = self.head.state_dict()
            state["head_opt"] = self.head_opt.state_dict()
        if self.value is not None:
            state["value"] = self.value.state_dict()
            state["value_opt"] = self.value_opt.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if (self.value is None) != ("value" not in state):
            raise ValueError("checkpoint baseline does not match the config's baseline")
        self.policy.load_state_dict(state["policy"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        if self.head_opt is not None:
            self.head.load_state_dict(state["head"])
            self.head_opt.load_state_dict(state["head_opt"])
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

    # ------------------------------------------------------------ gradient checks
    def gradient_checks(self, batch: dict[str, np.ndarray]) -> dict[str, tuple[Any, Any]]:
        """{loss name: (network(s), closure)} for ``rlnn check-gradients``, through the training code path:
        the algorithm's policy losses (``policy_checks``) for the policy MLP and, over a Box, the head's
        log-std (both get their gradient from one closure); the critic's loss.

        The batch is one env's transitions in time order; its normalized discounted reward-to-go
        serves as the advantages (any fixed weights exercise the same backward pass) and as the
        critic's targets.
        """
        n = len(batch["actions"])
        obs = batch["obs"].astype(self.dtype)
        actions = batch["actions"] if self.env_info.discrete else batch["actions"].astype(self.dtype)
        col = lambda x: np.asarray(x).reshape(n, 1)
        returns = reward_to_go(col(batch["rewards"]), col(batch["terminated"]), col(batch["truncated"]),
                               self.config.gamma).reshape(n)
        adv = (returns - returns.mean()) / (returns.std() + 1e-8)
        policy = [self.policy, self.head] if self.head.flat_params.size else self.policy
        checks = {name: (policy, closure) for name, closure in self.policy_checks(obs, actions, adv).items()}
        if self.value is not None:
            target = returns.reshape(n, 1).astype(self.dtype)

            def value_closure():
                return self.value_loss(self.value.forward(obs), target)

            checks["value_loss"] = (self.value, value_closure)
        return checks

    def policy_checks(self, obs: np.ndarray, actions: np.ndarray, adv: np.ndarray) -> dict[str, Any]:
        """{loss name: closure} of the algorithm's policy losses on these rows (``gradient_checks``)."""
        raise NotImplementedError


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = float(np.var(target))
    return 0.0 if var == 0 else 1.0 - float(np.var(target - pred)) / var
