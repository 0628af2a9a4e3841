"""Deep Q-learning (DQN, optionally Double DQN) with a replay buffer and a target network.

Q-network: an MLP regressor obs -> one Q-value per action. Each gradient step samples a uniform batch
from the replay buffer (``agents.replay``) and regresses Q(s, a) onto the TD target

    y = r + gamma * (1 - terminated) * Q_target(s', a*)
    a* = argmax_a' Q_target(s', a')        (DQN)
    a* = argmax_a' Q_online(s', a')        (Double DQN, van Hasselt et al. 2016; the default)

with loss ``huber`` (default) or ``l2``. The target bootstraps through a *truncated* transition (the
time limit is not a terminal state; the buffer stores it with terminated=False and the true final
observation as s') and not through a *terminated* one.

Schedules are in env steps (the agent does not know the run's total_steps):

* epsilon-greedy: epsilon goes linearly from ``start_e`` to ``end_e`` over ``exploration_steps``;
* learning starts once the buffer holds ``learning_starts`` transitions (and at least a batch);
* every ``train_freq`` env steps, a training round of ``gradient_steps`` gradient steps (with N envs,
  N steps arrive per loop iteration and a round takes all the gradient steps due; the replay ratio
  gradient_steps / train_freq is kept exactly);
* every ``target_update_interval`` env steps the target moves to the online net: Polyak
  ``target <- tau online + (1 - tau) target`` (tau = 1: hard copy);
* learning rate constant, or linear from ``lr`` to ``lr_end`` over ``lr_anneal_steps``.

With ``n_step = n > 1`` a replay row folds up to n rewards (``agents.nstep``): y = r_t + ... +
gamma^(m-1) r_{t+m-1} + gamma^m (1 - terminated) Q_target(s_{t+m}, a*), m = n or fewer at an episode's end.

The replay buffer is part of ``state_dict()`` (``checkpoint_replay_buffer = true``) so a resumed run
continues bit for bit; with false, checkpoints are small but a resumed run refills the buffer to
``learning_starts`` before learning again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.base import (NETWORK_DTYPES, Agent, EnvInfo, check_at_least, check_choice, check_network,
                         check_positive, check_range, rng_state, set_rng_state, trained_network_bytes)
from agents.nstep import NStepQueue
from agents.replay import ReplayBuffer
from rlnn import MLP, losses, optim, schedules



@dataclass
class DQNConfig:
    """Hyperparameters of the DQN agent (the TOML ``[agent]`` table for ``algo = "dqn"``)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])   # widths of the Q-network's hidden layers
    activation: str = "relu"              # hidden-layer activation (rlnn.activations: relu, tanh, sigmoid, ...)
    dtype: str = "float32"                # network precision: float32 (faster) or float64
    gamma: float = 0.99                   # discount factor of the TD target
    reward_scale: float = 1.0             # rewards are multiplied by this in the TD target (Q in scaled units)
    lr: float = 1e-3                      # Adam learning rate (the start of the schedule)
    lr_schedule: str = "constant"         # constant | linear (lr -> lr_end over lr_anneal_steps)
    lr_end: float = 1e-4                  # learning rate at the end of a linear schedule
    lr_anneal_steps: int = 50_000         # env steps of the linear schedule
    adam_eps: float = 1e-8                # Adam's epsilon (torch.optim.Adam's eps)
    loss: str = "huber"                   # huber | l2: the regression loss of Q(s, a) onto the TD target
    huber_delta: float = 1.0              # where the Huber loss turns from quadratic to linear
    buffer_size: int = 50_000             # replay buffer capacity, in transitions
    batch_size: int = 64                  # transitions per gradient step
    learning_starts: int = 1_000          # env steps (buffer rows) before the first gradient step
    train_freq: int = 1                   # env steps between training rounds
    gradient_steps: int = 1               # gradient steps per training round
    target_update_interval: int = 500     # env steps between target updates
    tau: float = 1.0                      # Polyak factor of a target update; 1.0 = hard copy
    double_dqn: bool = True               # Double DQN: the online net picks the next action, the target rates it
    n_step: int = 1                       # rewards folded into one TD target (agents.nstep); 1 = classic DQN
    start_e: float = 1.0                  # epsilon-greedy exploration rate at step 0
    end_e: float = 0.05                   # exploration rate after exploration_steps
    exploration_steps: int = 10_000       # env steps of the linear epsilon decay
    max_grad_norm: float = 10.0           # global-norm gradient clipping; 0 = off
    checkpoint_replay_buffer: bool = True  # keep the replay buffer in checkpoints (exact resume; larger files)

    def validate(self) -> None:
        check_network(self)
        check_choice(self, "dtype", NETWORK_DTYPES)
        check_choice(self, "loss", ("huber", "l2"))
        check_choice(self, "lr_schedule", ("constant", "linear"))
        check_range(self, ("gamma", "start_e", "end_e"), 0.0, 1.0)
        check_range(self, ("tau",), 0.0, 1.0, open_low=True)
        check_at_least(self, ("buffer_size", "batch_size", "train_freq", "gradient_steps", "target_update_interval",
                              "exploration_steps", "lr_anneal_steps", "n_step"), 1)
        check_at_least(self, ("learning_starts", "lr_end", "max_grad_norm"), 0)
        check_positive(self, ("lr", "adam_eps", "huber_delta", "reward_scale"))


def td_targets(rewards: np.ndarray, terminated: np.ndarray, q_next_target: np.ndarray, gamma: float,
               q_next_online: np.ndarray | None = None) -> np.ndarray:
    """y = r + gamma (1 - terminated) Q_target(s', a*), a* from the online net if given (Double DQN).

    rewards, terminated: (B,) (terminated as 0/1 or bool); q_next_*: (B, K) Q-values of s'.
    """
    rows = _arange(len(rewards))
    if q_next_online is None:
        q_next = q_next_target.max(axis=1)
    else:
        q_next = q_next_target[rows, q_next_online.argmax(axis=1)]
    return rewards + gamma * (1.0 - np.asarray(terminated, q_next.dtype)) * q_next


_ARANGES: dict[int, np.ndarray] = {}


def _arange(n: int) -> np.ndarray:
    """np.arange(n), made once per n (read-only): the row index of every batch's fancy indexing."""
    rows = _ARANGES.get(n)
    if rows is None:
        rows = _ARANGES[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


class DQNAgent(Agent):
    name = "dqn"
    output_kinds = {"q": "q_values", "target": "q_values"}

    def __init__(self, config: DQNConfig, env_info: EnvInfo, rng: np.random.Generator):
        config.validate()
        super().__init__(config, env_info, rng)
        c, env = config, env_info
        self.dtype = np.dtype(c.dtype)
        self.q = MLP([env.obs_dim, *c.hidden_sizes, env.num_actions], activation=c.activation, seed=rng,
                     dtype=self.dtype)
        self.target = self.q.copy()
        self.opt = optim.Adam(self.q.flat_params, self.q.flat_grads, lr=c.lr, eps=c.adam_eps)
        self.buffer = ReplayBuffer(c.buffer_size, env.obs_dim, obs_dtype=self.dtype, batch_size=c.batch_size)
        self.nstep = (NStepQueue(c.n_step, env.num_envs, env.obs_dim, c.gamma, obs_dtype=self.dtype)
                      if c.n_step > 1 else None)
        self.epsilon_schedule = schedules.linear(c.start_e, c.end_e, c.exploration_steps)
        if c.lr_schedule == "linear":
            self.lr_schedule = schedules.linear(c.lr, c.lr_end, c.lr_anneal_steps)
        else:
            self.lr_schedule = schedules.constant(c.lr)
        self.min_fill = max(c.batch_size, min(c.learning_starts, c.buffer_size))
        self.updates = 0                     # gradient steps taken
        self.next_train = c.train_freq       # env step of the next training round
        self.next_target = c.target_update_interval
        self._rows = np.arange(c.batch_size)
        self._dq = np.zeros((c.batch_size, env.num_actions), self.dtype)
        self._obs_pair = np.zeros((2 * c.batch_size, env.obs_dim), self.dtype)   # [s; s'] of a batch
        self._grad_clip = c.max_grad_norm if c.max_grad_norm > 0 else None

    @classmethod
    def memory(cls, config: DQNConfig, env_info: EnvInfo) -> list[tuple[str, str, int]]:
        sizes = [env_info.obs_dim, *config.hidden_sizes, env_info.num_actions]
        target = MLP.nbytes(sizes, config.dtype)
        replay = ReplayBuffer.nbytes(config.buffer_size, env_info.obs_dim, config.dtype)
        return [("agent.hidden_sizes", "the Q-network, its target and Adam",
                 trained_network_bytes(sizes, config.dtype) + target),
                ("agent.buffer_size", "the replay buffer", replay)]

    def epsilon(self, step: int) -> float:
        """The exploration rate at env step ``step``."""
        return self.epsilon_schedule(step)

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        """Epsilon-greedy in Q(obs, .) with epsilon(step); greedy: the argmax, no random draw."""
        if greedy:
            return self.q.predict(obs).argmax(axis=1)
        n = len(obs)
        eps = self.epsilon_schedule(step)
        if n == 1:
            # One env (the classic DQN loop): one uniform draw decides, and the single-observation
            # predict path is used; the array version below costs ~3x as much per step here. The
            # scalar integers() draw leaves the generator exactly as size=1 would and gives the same
            # value (tests/test_dqn.py), at a third of the cost.
            if self.rng.random() < eps:
                return np.array([self.rng.integers(0, self.env_info.num_actions)])
            return self.q.predict(obs[0]).argmax(keepdims=True)
        explore = self.rng.random(n) < eps
        random_actions = self.rng.integers(0, self.env_info.num_actions, size=n)
        if explore.all():
            return random_actions
        actions = self.q.predict(obs).argmax(axis=1)
        if explore.any():
            actions[explore] = random_actions[explore]
        return actions

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        if self.nstep is None:
            self.buffer.add(obs, actions, rewards, next_obs, terminated, valid)
        else:
            self.buffer.add(*self.nstep.add(obs, actions, rewards, next_obs, terminated, truncated, valid))

    # ---------------------------------------------------------------- learning
    def learn(self, step: int) -> dict[str, float]:
        """The training rounds and target updates due by env step ``step``; metrics of the last round."""
        c = self.config
        n_grad_steps = 0
        while step >= self.next_train:
            n_grad_steps += c.gradient_steps
            self.next_train += c.train_freq
        if self.buffer.size < self.min_fill:
            n_grad_steps = 0
        metrics: dict[str, float] = {}
        if n_grad_steps:
            self.opt.lr = self.lr_schedule(step)
            td_loss, q_mean, grad_norm = self.train_round(n_grad_steps)
            metrics = {"losses/td_loss": td_loss, "losses/q_values": q_mean, "losses/grad_norm": grad_norm,
                       "charts/epsilon": self.epsilon_schedule(step), "charts/learning_rate": self.opt.lr}
        while step >= self.next_target:
            self.next_target += c.target_update_interval
            if self.updates:
                if c.tau >= 1.0:
                    self.target.copy_from(self.q)
                else:
                    self.target.soft_update(self.q, c.tau)
        return metrics

    def train_round(self, n_grad_steps: int) -> tuple[float, float, float]:
        """``n_grad_steps`` gradient steps on independent batches: (TD loss, mean Q(s, a), gradient norm
        before clipping) of the last step.

        The target network and the buffer do not change during a round, so all batches are drawn
        at once and Q_target(s', .) is evaluated for all of them in one pass (exactly what one
        batch at a time would compute, with less Python overhead per step). With Double DQN the
        online net's Q(s', .) must come from the current parameters at each step: it shares the
        step's forward pass with Q(s, .) (one forward over [s; s'], backward through the s rows).
        """
        c = self.config
        obs, actions, rewards, next_obs, terminated = self.buffer.sample(c.batch_size, self.rng, n_grad_steps)
        if c.reward_scale != 1.0:
            rewards = rewards * c.reward_scale
        q_next_target = self.target.predict(next_obs.reshape(-1, self.env_info.obs_dim))
        q_next_target = q_next_target.reshape(n_grad_steps, c.batch_size, -1)
        if not c.double_dqn:
            y_all = td_targets(rewards.reshape(-1), terminated.reshape(-1),
                               q_next_target.reshape(n_grad_steps * c.batch_size, -1), c.gamma)
            y_all = y_all.reshape(n_grad_steps, c.batch_size)
        batch = c.batch_size
        for k in range(n_grad_steps):
            if c.double_dqn:
                np.concatenate((obs[k], next_obs[k]), out=self._obs_pair)
                q_both = self.q.forward(self._obs_pair)
                y = td_targets(rewards[k], terminated[k], q_next_target[k], c.gamma, q_both[batch:])
                loss = self._td_loss_and_grad_from_forward(q_both[:batch], actions[k], y)
            else:
                loss = self._td_loss_and_grad_from_forward(self.q.forward(obs[k]), actions[k], y_all[k])
            grad_norm = self.optimizer_step()
        return loss, float(np.add.reduce(self._q_sa)) / len(self._q_sa), grad_norm

    def td_loss_and_grad(self, obs: np.ndarray, actions: np.ndarray, y: np.ndarray) -> float:
        """loss(Q(s, a), y) on a batch, obs (B, d), actions (B,), y (B,) held fixed; its gradient w.r.t.
        the Q-network's parameters is left in ``q.flat_grads`` (overwritten, not accumulated)."""
        return self._td_loss_and_grad_from_forward(self.q.forward(obs), actions, y)

    def _td_loss_and_grad_from_forward(self, q: np.ndarray, actions: np.ndarray, y: np.ndarray) -> float:
        """``td_loss_and_grad`` from an existing forward pass: q is the first len(q) rows Q(s, .) of the
        last ``q.forward`` (whose later rows may be Q(s', .), not in the loss).

        Only the taken action's output gets a gradient: dL/dQ(s, .) is zero but in column a.
        """
        same_size = len(actions) == len(self._rows)
        rows = self._rows if same_size else np.arange(len(actions))
        q_sa = self._q_sa = q[rows, actions]
        if self.config.loss == "huber":
            loss, dq_sa = losses.huber(q_sa, y, delta=self.config.huber_delta)
        else:
            loss, dq_sa = losses.l2(q_sa, y)
        dq = self._dq if same_size else np.zeros_like(q)
        dq.fill(0)
        dq[rows, actions] = dq_sa
        self.q.backward(dq, rows=len(q), input_grad=False, accumulate=False)
        return loss

    def optimizer_step(self) -> float:
        """Clip q.flat_grads to the global norm ``max_grad_norm``, one Adam step (counted in ``updates``);
        returns the norm before clipping."""
        grad_norm = optim.clip_grad_norm(self.q.flat_grads, self._grad_clip)
        self.opt.step()
        self.updates += 1
        return grad_norm

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "opt": self.opt.state_dict(),
            "rng": rng_state(self.rng),
            "counters": {"updates": self.updates, "next_train": self.next_train, "next_target": self.next_target},
        }
        if self.config.checkpoint_replay_buffer:
            state["replay"] = self.buffer.state_dict()
            if self.nstep is not None:
                state["nstep"] = self.nstep.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
        set_rng_state(self.rng, state["rng"])
        counters = state["counters"]
        self.updates = int(counters["updates"])
        self.next_train, self.next_target = int(counters["next_train"]), int(counters["next_target"])
        if "replay" in state:
            self.buffer.load_state_dict(state["replay"])
            if self.nstep is not None:
                self.nstep.load_state_dict(state["nstep"])
        else:
            self.buffer.clear()
            if self.nstep is not None:
                self.nstep.clear()

    def networks(self) -> dict:
        return {"q": self.q, "target": self.target}

    def optimizers(self) -> dict:
        return {"q": self.opt}

    def gradient_checks(self, batch: dict[str, np.ndarray]) -> dict:
        """{"td_loss": (q-net, closure)}: the training loss on ``batch`` with its TD targets held fixed.

        ``closure()`` recomputes the loss from ``q.flat_params`` and leaves its gradient in ``q.grads``,
        through the same code path as a training step (for ``rlnn check-gradients``).
        """
        c = self.config
        obs, next_obs = batch["obs"].astype(self.dtype), batch["next_obs"].astype(self.dtype)
        q_next_online = self.q.predict(next_obs) if c.double_dqn else None
        rewards = batch["rewards"] * c.reward_scale
        y = td_targets(rewards, batch["terminated"], self.target.predict(next_obs), c.gamma, q_next_online)
        return {"td_loss": (self.q, lambda: self.td_loss_and_grad(obs, batch["actions"], y.astype(self.dtype)))}
