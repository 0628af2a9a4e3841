"""Returns and advantages over a vector-env rollout, in pure NumPy.

Every array is time-major, shape ``(T, N)``: row ``t`` holds step ``t`` of the ``N`` sub-envs. Per
step and sub-env the rollout records the reward ``r_t``, the flags ``terminated_t`` / ``truncated_t``
of that transition and ``valid_t`` (False for the no-op reset row that follows an episode's end
under NEXT_STEP autoreset, see ``agents.base``). ``done_t = terminated_t or truncated_t``.

Episode boundaries. A done step ends its episode: nothing from later rows flows back into it.

* terminated: the next state is terminal, its value is 0 (no bootstrap).
* truncated (time limit): the next state is *not* terminal; with a critic its value
  ``V(next_obs_t)`` (``next_obs_t`` is the true final observation) is bootstrapped.
* the rollout's last row, not done: the episode continues after the rollout; with a critic it is
  bootstrapped with ``V(next_obs_{T-1})``.
* invalid rows get advantage/return 0 and are to be masked out of every loss.

``next_values[t] = V(next_obs_t)`` for every row, so one formula covers the three cases:

    delta_t = r_t + gamma (1 - terminated_t) next_values_t - values_t
    A_t     = valid_t (delta_t + gamma lambda (1 - done_t) A_{t+1}),      A_T = 0

(GAE(lambda), Schulman et al. 2016). ``lambda = 1`` gives the bootstrapped reward-to-go minus the
baseline ``V(s_t)``; ``lambda = 0`` the one-step TD error. Value targets are ``A_t + values_t``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reward_to_go", "gae", "episode_complete", "discount_cumsum"]


def _as_bool(x, shape):
    x = np.asarray(x, dtype=bool)
    if x.shape != shape:
        raise ValueError(f"flag array has shape {x.shape}, expected {shape}")
    return x


def _flags(rewards, terminated, truncated, valid):
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim == 1:
        raise ValueError("arrays must be time-major (T, N); reshape a single env's rollout to (T, 1)")
    shape = rewards.shape
    terminated = _as_bool(terminated, shape)
    truncated = _as_bool(truncated, shape)
    valid = np.ones(shape, bool) if valid is None else _as_bool(valid, shape)
    return rewards, terminated, truncated, valid


def discount_cumsum(x: np.ndarray, gamma: float) -> np.ndarray:
    """y_t = sum_k gamma^k x_{t+k} along axis 0 (no episode boundaries): the textbook reward-to-go."""
    x = np.asarray(x, dtype=np.float64)
    y = np.zeros_like(x)
    running = np.zeros(x.shape[1:])
    for t in range(len(x) - 1, -1, -1):
        running = x[t] + gamma * running
        y[t] = running
    return y


def reward_to_go(rewards, terminated, truncated, gamma: float, valid=None, next_values=None) -> np.ndarray:
    """Discounted reward-to-go G_t within each episode of each sub-env, shape (T, N).

    ``G_t = r_t + gamma * (G_{t+1} if the episode goes on, else the bootstrap)``, where the
    bootstrap after a truncated step or after the rollout's last (not done) row is
    ``next_values[t]`` (= V(next_obs_t)) when given and 0 otherwise; after a terminated step it
    is always 0. Invalid rows get 0 and do not break anything around them (they only ever follow
    a done step).
    """
    rewards, terminated, truncated, valid = _flags(rewards, terminated, truncated, valid)
    zeros = np.zeros(rewards.shape)
    return gae(rewards, zeros, zeros if next_values is None else next_values, terminated, truncated,
               gamma, 1.0, valid, _bootstrap_mid=False)[0]


def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float,
        valid=None, *, _bootstrap_mid: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, value targets) by GAE(lambda), both (T, N) float64, 0 on invalid rows.

    ``values[t] = V(obs_t)`` and ``next_values[t] = V(next_obs_t)``; see the module docstring.
    """
    rewards, terminated, truncated, valid = _flags(rewards, terminated, truncated, valid)
    values = np.asarray(values, dtype=np.float64)
    next_values = np.asarray(next_values, dtype=np.float64)
    if values.shape != rewards.shape or next_values.shape != rewards.shape:
        raise ValueError(f"values {values.shape} and next_values {next_values.shape} must have the "
                         f"rewards' shape {rewards.shape}")
    done = terminated | truncated
    not_term = 1.0 - terminated
    cont = gamma * lam * (1.0 - done)
    if _bootstrap_mid:
        delta = rewards + gamma * not_term * next_values - values
    else:
        # Plain reward-to-go: bootstrap only where the episode leaves the rollout (truncation, or
        # the last row); in between the recursion carries the true future rewards.
        boot = truncated & ~terminated
        boot[-1] |= ~done[-1]
        delta = rewards + gamma * np.where(boot, next_values, 0.0) - values
    adv = np.zeros(rewards.shape)
    running = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        running = delta[t] + cont[t] * running
        running *= valid[t]
        adv[t] = running
    returns = (adv + values) * valid
    return adv, returns


def episode_complete(terminated, truncated, valid=None, lengths=None) -> np.ndarray:
    """(T, N) bool: row t of column i belongs to an episode that ends (done) at some row >= t.

    Rows after a column's last done step are an episode still running when the rollout stopped.
    With ``lengths`` (N,), only the first ``lengths[i]`` rows of column i exist (later rows are False).
    """
    terminated = np.asarray(terminated, bool)
    done = terminated | np.asarray(truncated, bool)
    T = done.shape[0]
    if lengths is not None:
        done = done & (np.arange(T)[:, None] < np.asarray(lengths)[None, :])
    # reverse cumulative OR along time
    complete = np.flip(np.logical_or.accumulate(np.flip(done, 0), axis=0), 0)
    if valid is not None:
        complete = complete & np.asarray(valid, bool)
    return complete
