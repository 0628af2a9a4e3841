"""Soft Actor-Critic (Haarnoja et al. 2018) for Box actions, as Stable-Baselines3 and CleanRL train it.

Networks (rlnn MLPs):

* twin critics Q_1, Q_2: regressors of Q(s, a), the action an input: each MLP takes [s, a] (d + m
  numbers) and outputs one value; each has a Polyak-averaged target copy Q_i';
* the actor: an MLP s -> [mean | raw log-std] (2m numbers), read by the tanh-squashed Gaussian head
  (``agents.heads.SquashedGaussian``): a = scale tanh(mean + std noise) + offset lies in the Box.

One gradient step (``update``), on a uniform batch from the replay buffer:

    critic target  y = r + gamma (1 - terminated) (min_i Q_i'(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
    critic loss    mean (Q_i(s, a) - y)^2, each critic its own Adam step
    actor loss     mean (alpha log pi(a~|s) - min_i Q_i(s, a~)),  a~ = a~(s, noise) (reparameterization)
    alpha step     log alpha descends -log alpha (log pi(a~|s) + target_entropy)   (SB3's temperature loss)
    Polyak         Q_i' <- tau Q_i + (1 - tau) Q_i'

The actor's gradient is the chain rule through the critics into their *input*: ``MLP.backward`` of
dL/dQ returns dL/d[s, a], whose action columns are dL/da~; the head carries that through the tanh and
the log-det correction into the mean and log-std, and the actor's MLP takes it from there
(``actor_loss_and_grad``; checked against finite differences in tests/test_sac.py and by ``rlnn
check-gradients --algo sac``). The temperature step uses the actor loss's log pi (SB3 does the same;
CleanRL samples again after the actor step). Each update is SB3's ``SAC.train`` step: the critics step
first, and the actor loss reads the stepped critics.

Schedules are in env steps: uniform random actions until ``learning_starts`` env steps (then also the
first gradient step; ``uniform_warmup = false`` acts with the initial policy instead), a training round of ``gradient_steps`` gradient steps every ``train_freq`` env
steps (with N envs a loop iteration brings N steps and the round takes all the gradient steps due),
learning rate constant or linear from ``lr`` to ``lr_end`` over ``lr_anneal_steps``. A truncated
transition bootstraps (the buffer stores it with terminated=False), a terminated one does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agents.base import (NETWORK_DTYPES, Agent, EnvInfo, check_at_least, check_choice, check_network,
                         check_positive, check_range, rng_state, set_rng_state, trained_network_bytes,
                         training_rounds_due)
from agents.heads import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussian
from agents.replay import ReplayBuffer
from rlnn import MLP, losses, optim, schedules


@dataclass
class SACConfig:
    """Hyperparameters of the SAC agent (the TOML ``[agent]`` table for ``algo = "sac"``)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])   # hidden widths of the actor and each critic
    activation: str = "relu"              # hidden-layer activation (rlnn.activations)
    dtype: str = "float32"                # network precision: float32 (faster) or float64
    gamma: float = 0.99                   # discount factor of the soft TD target
    tau: float = 0.005                    # Polyak factor of the critics' targets, every gradient step
    lr: float = 3e-4                      # Adam: actor, critics and the temperature
    lr_schedule: str = "constant"         # constant | linear (lr -> lr_end over lr_anneal_steps)
    lr_end: float = 3e-5                  # learning rate at the end of a linear schedule
    lr_anneal_steps: int = 100_000        # env steps of the linear schedule
    adam_eps: float = 1e-8                # Adam's epsilon (torch.optim.Adam's eps)
    buffer_size: int = 1_000_000          # replay buffer capacity, in transitions
    batch_size: int = 256                 # transitions per gradient step
    learning_starts: int = 100            # env steps before the first gradient step
    uniform_warmup: bool = True           # act uniformly at random until learning_starts (SB3, CleanRL); false:
                                          # with the initial policy (its own exploration, e.g. log_std_init)
    train_freq: int = 1                   # env steps between training rounds
    gradient_steps: int = 1               # gradient steps per training round
    autotune: bool = True                 # learn the entropy temperature alpha
    alpha: float = 1.0                    # the temperature: fixed, or autotune's starting value
    target_entropy: float | None = None   # autotune's target entropy; None: -dim(A)
    log_std_init: float | None = None     # the actor's starting log-std (its output bias); None: the bias is 0
    noise_repeat: int = 1                 # env steps an exploration noise draw is held (temporally correlated
                                          # exploration, as SB3's sde_sample_freq); 1: a fresh draw every step
    checkpoint_replay_buffer: bool = True  # keep the replay buffer in checkpoints (exact resume; larger files)

    def validate(self) -> None:
        check_network(self)
        check_choice(self, "dtype", NETWORK_DTYPES)
        check_choice(self, "lr_schedule", ("constant", "linear"))
        check_range(self, ("gamma",), 0.0, 1.0)
        check_range(self, ("tau",), 0.0, 1.0, open_low=True)
        check_at_least(self, ("buffer_size", "batch_size", "train_freq", "gradient_steps", "lr_anneal_steps",
                              "noise_repeat"), 1)
        check_at_least(self, ("learning_starts", "lr_end"), 0)
        check_positive(self, ("lr", "adam_eps", "alpha"))
        if self.log_std_init is not None and not LOG_STD_MIN < self.log_std_init < LOG_STD_MAX:
            raise ValueError(f"agent.log_std_init = {self.log_std_init}: must be in ({LOG_STD_MIN:g}, {LOG_STD_MAX:g})")


class SACAgent(Agent):
    name = "sac"
    action_kinds = ("continuous",)
    output_kinds = {"q1": "values", "q2": "values", "q1_target": "values", "q2_target": "values"}

    def __init__(self, config: SACConfig, env_info: EnvInfo, rng: np.random.Generator):
        config.validate()
        super().__init__(config, env_info, rng)
        c, d, m = config, env_info.obs_dim, env_info.action_dim
        self.dtype = np.dtype(c.dtype)
        make = lambda sizes: MLP(sizes, activation=c.activation, seed=rng, dtype=self.dtype)  # noqa: E731
        self.actor = make([d, *c.hidden_sizes, 2 * m])
        self.q1, self.q2 = make([d + m, *c.hidden_sizes, 1]), make([d + m, *c.hidden_sizes, 1])
        self.q1_target, self.q2_target = self.q1.copy(), self.q2.copy()
        self.head = SquashedGaussian(env_info.action_low, env_info.action_high, self.dtype)
        if c.log_std_init is not None:      # exploration from the start: the log-std outputs' bias
            self.actor.biases[-1][m:] = self.head.raw_log_std(c.log_std_init)
        adam = lambda net: optim.Adam(net.flat_params, net.flat_grads, lr=c.lr, eps=c.adam_eps)  # noqa: E731
        self.actor_opt, self.q1_opt, self.q2_opt = adam(self.actor), adam(self.q1), adam(self.q2)
        self.log_alpha = np.array([math.log(c.alpha)])             # float64: a scalar, optimized by Adam too
        self.log_alpha_grad = np.zeros(1)
        self.alpha_opt = optim.Adam(self.log_alpha, self.log_alpha_grad, lr=c.lr, eps=c.adam_eps)
        self.target_entropy = float(-m if c.target_entropy is None else c.target_entropy)
        self.buffer = ReplayBuffer(c.buffer_size, d, obs_dtype=self.dtype, batch_size=c.batch_size, action_dim=m)
        self.lr_schedule = (schedules.linear(c.lr, c.lr_end, c.lr_anneal_steps) if c.lr_schedule == "linear"
                            else schedules.constant(c.lr))
        self.min_fill = max(c.batch_size, min(c.learning_starts, c.buffer_size))
        self.updates = 0                     # gradient steps taken
        self.next_train = c.train_freq       # env step of the next training round
        self._noise, self._noise_age = None, 0   # the exploration noise held and the act() calls it served
        self._low, self._high = np.asarray(env_info.action_low), np.asarray(env_info.action_high)
        # [s, a] inputs of the critics, written in place: of the batch, of s' with a', of s with a~
        self._sa, self._next_sa, self._pi_sa = (np.empty((c.batch_size, d + m), self.dtype) for _ in range(3))

    @classmethod
    def memory(cls, config: SACConfig, env_info: EnvInfo) -> list[tuple[str, str, int]]:
        d, m = env_info.obs_dim, env_info.action_dim
        actor, critic = [d, *config.hidden_sizes, 2 * m], [d + m, *config.hidden_sizes, 1]
        networks = (trained_network_bytes(actor, config.dtype)
                    + 2 * (trained_network_bytes(critic, config.dtype) + MLP.nbytes(critic, config.dtype)))
        return [("agent.hidden_sizes", "the actor, the twin critics, their targets and Adam", networks),
                ("agent.buffer_size", "the replay buffer",
                 ReplayBuffer.nbytes(config.buffer_size, d, config.dtype, action_dim=m))]

    @property
    def alpha(self) -> float:
        return math.exp(self.log_alpha[0])

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        """a ~ pi(.|obs); uniform in the Box before ``learning_starts``; greedy: the squashed mean."""
        if greedy:
            return self.head.mode(self.actor.predict(obs))
        n, m = len(obs), self.env_info.action_dim
        if step < self.config.learning_starts and self.config.uniform_warmup:
            return self.rng.uniform(self._low, self._high, size=(n, m))
        noise = self.exploration_noise(n, m)
        if n == 1:      # the single-observation predict path (cheaper per call)
            return self.head.action(self.actor.predict(obs[0]), noise[0]).reshape(1, m)
        return self.head.action(self.actor.predict(obs), noise)

    def exploration_noise(self, n: int, m: int) -> np.ndarray:
        """The standard normal noise (n, m) of the acting policy: a fresh draw every ``noise_repeat`` calls."""
        if self._noise is None or self._noise.shape != (n, m) or self._noise_age >= self.config.noise_repeat:
            self._noise, self._noise_age = self.rng.standard_normal((n, m)), 0
        self._noise_age += 1
        return self._noise

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        self.buffer.add(obs, actions, rewards, next_obs, terminated, valid)

    # ---------------------------------------------------------------- learning
    def learn(self, step: int) -> dict[str, float]:
        """The training rounds due by env step ``step``; metrics of the last gradient step."""
        c = self.config
        rounds, self.next_train = training_rounds_due(step, self.next_train, c.train_freq)
        n_grad_steps = rounds * c.gradient_steps
        if self.buffer.size < self.min_fill or step < c.learning_starts:
            return {}
        lr = self.lr_schedule(step)
        for opt in (self.actor_opt, self.q1_opt, self.q2_opt, self.alpha_opt):
            opt.lr = lr
        metrics: dict[str, float] = {}
        for _ in range(n_grad_steps):
            metrics = self.update()
        if metrics:
            metrics["charts/learning_rate"] = lr
        return metrics

    def update(self) -> dict[str, float]:
        """One SAC gradient step, in the order of CleanRL's sac_continuous_action.py."""
        c, d = self.config, self.env_info.obs_dim
        obs, actions, rewards, next_obs, terminated = self.buffer.sample(c.batch_size, self.rng)
        noise = self.rng.standard_normal((2, c.batch_size, self.env_info.action_dim), dtype=self.dtype)
        alpha = self.alpha
        # critic target: y = r + gamma (1 - terminated) (min_i Q_i'(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s')
        next_actions, next_log_probs = self.head.sample(self.actor.predict(next_obs), noise[0])
        next_sa = np.concatenate((next_obs, next_actions), axis=1, out=self._next_sa)
        q_next = np.minimum(self.q1_target.predict(next_sa), self.q2_target.predict(next_sa))[:, 0]
        y = rewards + c.gamma * (1.0 - terminated) * (q_next - alpha * next_log_probs)
        # critic loss and step: each critic regresses Q_i(s, a) onto y
        sa = np.concatenate((obs, actions), axis=1, out=self._sa)
        q1_loss, q1_values = self.critic_loss_and_grad(self.q1, sa, y)
        self.q1_opt.step()
        q2_loss, _ = self.critic_loss_and_grad(self.q2, sa, y)
        self.q2_opt.step()
        # actor loss and step: mean(alpha log pi(a~|s) - min_i Q_i(s, a~)), through the critics into a~
        actor_loss, log_probs = self.actor_loss_and_grad(obs, noise[1], alpha)
        self.actor_opt.step()
        # alpha step: d/dlog alpha of -log alpha (log pi + target entropy), log pi held fixed
        alpha_loss = 0.0
        if c.autotune:
            entropy_gap = float(log_probs.mean()) + self.target_entropy
            self.log_alpha_grad[0] = -entropy_gap
            alpha_loss = -self.log_alpha[0] * entropy_gap
            self.alpha_opt.step()
        # Polyak: Q_i' <- tau Q_i + (1 - tau) Q_i'
        self.q1_target.soft_update(self.q1, c.tau)
        self.q2_target.soft_update(self.q2, c.tau)
        self.updates += 1
        return {"losses/qf_loss": (q1_loss + q2_loss) / 2, "losses/qf1_values": q1_values,
                "losses/actor_loss": actor_loss, "losses/alpha": alpha, "losses/alpha_loss": alpha_loss,
                "losses/entropy": -float(log_probs.mean())}

    def critic_loss_and_grad(self, q: MLP, sa: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean (Q(s, a) - y)^2, mean Q(s, a)) on a batch sa = [s, a] (B, d + m), y (B,) held fixed;
        the gradient w.r.t. q's parameters is left in ``q.flat_grads`` (overwritten)."""
        q_sa = q.forward(sa)
        loss, d_q = losses.l2(q_sa[:, 0], y)
        q.backward(d_q[:, None], input_grad=False, accumulate=False)
        return loss, float(q_sa.mean())

    def actor_loss_and_grad(self, obs: np.ndarray, noise: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
        """(mean(alpha log pi(a~|s) - min_i Q_i(s, a~)), log pi(a~|s) (B,)) with a~ = a~(s, noise); its
        gradient w.r.t. the actor's parameters is left in ``actor.flat_grads`` (overwritten); the critics
        are held fixed (their backward gives dQ/da~ alone and leaves their ``flat_grads`` alone)."""
        B, d = len(obs), self.env_info.obs_dim
        actions, log_probs = self.head.sample(self.actor.forward(obs), noise)
        sa = np.concatenate((obs, actions), axis=1, out=self._pi_sa if B == len(self._pi_sa) else None)
        q1, q2 = self.q1.forward(sa)[:, 0], self.q2.forward(sa)[:, 0]
        first = q1 <= q2                                  # which critic is the minimum, row by row
        loss = float(np.mean(alpha * log_probs - np.where(first, q1, q2)))
        # dL/dmin Q = -1/B, routed to the critic that is the minimum; each critic's backward returns
        # dL/d[s, a~], and its action columns are its share of dL/da~
        d_min = self.dtype.type(-1.0 / B)
        d_q1 = np.where(first, d_min, self.dtype.type(0.0))[:, None]
        d_q2 = np.where(first, self.dtype.type(0.0), d_min)[:, None]
        d_actions = self.q1.backward(d_q1, param_grads=False)[:, d:] + self.q2.backward(d_q2, param_grads=False)[:, d:]
        d_log_probs = np.full(B, alpha / B, self.dtype)  # dL/dlog pi
        d_out = self.head.backward(d_actions, d_log_probs)   # through tanh and the log-det correction
        self.actor.backward(d_out, input_grad=False, accumulate=False)
        return loss, log_probs

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = {
            "actor": self.actor.state_dict(), "q1": self.q1.state_dict(), "q2": self.q2.state_dict(),
            "q1_target": self.q1_target.state_dict(), "q2_target": self.q2_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "q1_opt": self.q1_opt.state_dict(),
            "q2_opt": self.q2_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict(),
            "log_alpha": self.log_alpha.copy(),
            "rng": rng_state(self.rng),
            "counters": {"updates": self.updates, "next_train": self.next_train, "noise_age": self._noise_age},
        }
        if self._noise is not None:
            state["noise"] = self._noise.copy()
        if self.config.checkpoint_replay_buffer:
            state["replay"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("actor_opt", "q1_opt", "q2_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.log_alpha[...] = np.asarray(state["log_alpha"], np.float64).reshape(1)
        set_rng_state(self.rng, state["rng"])
        self.updates = int(state["counters"]["updates"])
        self.next_train = int(state["counters"]["next_train"])
        self._noise_age = int(state["counters"].get("noise_age", 0))
        self._noise = np.array(state["noise"], np.float64) if "noise" in state else None
        if "replay" in state:
            self.buffer.load_state_dict(state["replay"])
        else:
            self.buffer.clear()

    def networks(self) -> dict:
        return {"actor": self.actor, "q1": self.q1, "q2": self.q2, "q1_target": self.q1_target,
                "q2_target": self.q2_target}

    def optimizers(self) -> dict:
        return {"actor": self.actor_opt, "q1": self.q1_opt, "q2": self.q2_opt}

    def gradient_checks(self, batch: dict[str, np.ndarray]) -> dict:
        """{"critic_loss/q1", "critic_loss/q2", "actor_loss": (network, closure)} on ``batch``, with the
        critic targets and the reparameterization noise held fixed, through the training code path."""
        obs, next_obs = batch["obs"].astype(self.dtype), batch["next_obs"].astype(self.dtype)
        n, m = len(obs), self.env_info.action_dim
        noise = np.random.default_rng(0).standard_normal((2, n, m)).astype(self.dtype)
        alpha = self.alpha
        next_actions, next_log_probs = self.head.sample(self.actor.predict(next_obs), noise[0])
        next_sa = np.concatenate((next_obs, next_actions), axis=1)
        q_next = np.minimum(self.q1_target.predict(next_sa), self.q2_target.predict(next_sa))[:, 0]
        y = (batch["rewards"] + self.config.gamma * (1.0 - batch["terminated"]) * (q_next - alpha * next_log_probs))
        y = y.astype(self.dtype)
        sa = np.concatenate((obs, np.asarray(batch["actions"], self.dtype).reshape(n, m)), axis=1)
        return {"critic_loss/q1": (self.q1, lambda: self.critic_loss_and_grad(self.q1, sa, y)[0]),
                "critic_loss/q2": (self.q2, lambda: self.critic_loss_and_grad(self.q2, sa, y)[0]),
                "actor_loss": (self.actor, lambda: self.actor_loss_and_grad(obs, noise[1], alpha)[0])}
