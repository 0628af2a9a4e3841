"""The replay ring buffer (wraparound, valid-row filtering, uniform sampling, state round trip) and the
rollout buffer of policy gradient (time-major storage, carry-over of unfinished episodes, growth)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.replay import ReplayBuffer
from agents.rollout import RolloutBuffer


def _rows(start, n, d=3):
    """n transitions whose every field encodes its global index i (obs = i, next_obs = i + 0.5 ...)."""
    i = np.arange(start, start + n)
    obs = np.repeat(i[:, None], d, axis=1).astype(np.float32)
    return obs, i % 2, i * 10.0, obs + 0.5, (i % 3 == 0)


def test_wraparound_keeps_the_newest_rows_in_ring_order():
    buf = ReplayBuffer(5, 3)
    buf.add(*_rows(0, 3))
    assert (buf.pos, buf.size) == (3, 3)
    buf.add(*_rows(3, 4))          # 3, 4 fill the end; 5, 6 wrap to rows 0, 1
    assert (buf.pos, buf.size, buf.added) == (2, 5, 7)
    assert buf.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buf.next_obs[:, 0].tolist() == [5.5, 6.5, 2.5, 3.5, 4.5]
    assert buf.rewards.tolist() == [50, 60, 20, 30, 40]
    assert buf.actions.tolist() == [1, 0, 0, 1, 0]
    assert buf.terminated.tolist() == [0, 1, 0, 1, 0]
    buf.add(*_rows(7, 12))         # more than the capacity at once: only the newest 5 survive
    assert sorted(buf.obs[:, 0].tolist()) == [14, 15, 16, 17, 18]
    assert buf.size == 5 and buf.added == 19
    # the ring order continues: the row after the newest is the oldest
    newest = (buf.pos - 1) % 5
    assert buf.obs[newest, 0] == 18 and buf.obs[buf.pos, 0] == 14


def test_one_row_at_a_time_stores_what_one_call_stores():
    # One env adds one row per step (its own code path): the same rows, wraparound and counters.
    obs, act, rew, nxt, term = _rows(0, 13)
    valid = np.arange(13) % 4 != 3
    at_once, one_by_one = ReplayBuffer(5, 3), ReplayBuffer(5, 3)
    at_once.add(obs, act, rew, nxt, term, valid=valid)
    for i in range(13):
        one_by_one.add(obs[i:i + 1], act[i:i + 1], rew[i:i + 1], nxt[i:i + 1], term[i:i + 1], valid=valid[i:i + 1])
    for key, value in at_once.state_dict().items():
        np.testing.assert_array_equal(one_by_one.state_dict()[key], value)


def test_invalid_rows_are_not_stored():
    buf = ReplayBuffer(10, 3)
    obs, act, rew, nxt, term = _rows(0, 4)
    buf.add(obs, act, rew, nxt, term, valid=np.array([True, False, True, False]))
    assert buf.size == 2 and buf.obs[:2, 0].tolist() == [0, 2]
    buf.add(obs, act, rew, nxt, term, valid=np.zeros(4, bool))
    assert buf.size == 2


def test_sampling_is_uniform_over_filled_rows_and_consistent():
    buf = ReplayBuffer(100, 3)
    buf.add(*_rows(0, 40))
    rng = np.random.default_rng(0)
    counts = np.zeros(40)
    for _ in range(400):
        obs, act, rew, nxt, term = buf.sample(64, rng)
        i = obs[:, 0].astype(int)
        assert i.max() < 40                        # never the empty tail
        assert np.array_equal(nxt[:, 0], obs[:, 0] + 0.5)
        assert np.array_equal(act, i % 2) and np.array_equal(rew, i * 10.0)
        assert np.array_equal(term, (i % 3 == 0).astype(np.float32))
        counts += np.bincount(i, minlength=40)
    expected = 400 * 64 / 40
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 80                                # 39 dof: mean 39, p(>80) ~ 1e-4
    # the same generator state gives the same batch
    a = [x.copy() for x in buf.sample(8, np.random.default_rng(5))]
    b = buf.sample(8, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_state_dict_round_trip_continues_identically():
    buf = ReplayBuffer(7, 3)
    buf.add(*_rows(0, 10))
    state = buf.state_dict()
    assert state["obs"].shape == (7, 3)
    small = ReplayBuffer(7, 3)
    small.add(*_rows(0, 2))
    assert small.state_dict()["obs"].shape == (2, 3)   # only filled rows are saved

    fresh = ReplayBuffer(7, 3)
    fresh.load_state_dict(state)
    for b in (buf, fresh):
        b.add(*_rows(10, 3))
    for key in ("obs", "next_obs", "actions", "rewards", "terminated"):
        assert np.array_equal(getattr(buf, key), getattr(fresh, key))
    assert (buf.pos, buf.size, buf.added) == (fresh.pos, fresh.size, fresh.added)
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    assert all(np.array_equal(x.copy(), y) for x, y in zip(buf.sample(16, r1), fresh.sample(16, r2)))

    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(8, 3).load_state_dict(state)


def _box_rows(start, n, d=3, m=2):
    """``_rows`` with action vectors (n, m) that also encode the index: a_i = (i + 0.25, -i)."""
    obs, _, rew, nxt, term = _rows(start, n, d)
    i = np.arange(start, start + n)
    return obs, np.stack([i + 0.25, -i], axis=1), rew, nxt, term


def test_action_vectors_are_stored_sampled_and_restored_with_their_rows():
    # SAC's Box actions: (n, m) floats in the rows; one env at a time, several at once, wraparound.
    obs, act, rew, nxt, term = _box_rows(0, 13)
    valid = np.arange(13) % 4 != 3
    at_once, one_by_one = ReplayBuffer(7, 3, action_dim=2), ReplayBuffer(7, 3, action_dim=2)
    for part in (slice(0, 6), slice(6, 13)):         # the second call wraps around
        at_once.add(obs[part], act[part], rew[part], nxt[part], term[part], valid=valid[part])
    for i in range(13):
        one_by_one.add(obs[i:i + 1], act[i:i + 1], rew[i:i + 1], nxt[i:i + 1], term[i:i + 1], valid=valid[i:i + 1])
    for key, value in at_once.state_dict().items():
        np.testing.assert_array_equal(one_by_one.state_dict()[key], value)
    assert at_once.actions.shape == (7, 2) and sorted(at_once.actions[:, 1]) == [-12, -10, -9, -8, -6, -5, -4]
    s_obs, s_act, s_rew, s_nxt, s_term = at_once.sample(32, np.random.default_rng(0), n_batches=3)
    assert s_act.shape == (3, 32, 2) and s_act.dtype == np.float32
    i = s_obs[..., 0]
    assert np.array_equal(s_act[..., 0], i + 0.25) and np.array_equal(s_act[..., 1], -i)
    assert np.array_equal(s_rew, i * 10.0) and np.array_equal(s_nxt[..., 0], i + 0.5)
    fresh = ReplayBuffer(7, 3, action_dim=2)
    fresh.load_state_dict(at_once.state_dict())
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    assert all(np.array_equal(x.copy(), y) for x, y in zip(at_once.sample(16, r1), fresh.sample(16, r2)))
    with pytest.raises(ValueError, match="actions"):
        ReplayBuffer(7, 3, action_dim=3).load_state_dict(at_once.state_dict())
    with pytest.raises(ValueError, match="actions"):
        ReplayBuffer(7, 3).load_state_dict(at_once.state_dict())


def test_empty_buffer_cannot_be_sampled():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 2).sample(2, np.random.default_rng(0))


def test_the_largest_uniform_draw_maps_to_the_last_filled_row():
    class LargestDraw:               # a generator whose every uniform number is the largest below 1
        def random(self, out):
            out.fill(np.nextafter(1.0, 0.0))
            return out

    for size in (1, 3, 64, 1000, 4096):
        buf = ReplayBuffer(5000, 2)
        rows = np.arange(size, dtype=np.float32)
        buf.add(np.stack([rows, rows], 1), np.arange(size), rows, np.stack([rows, rows], 1), np.zeros(size))
        obs, actions, *_ = buf.sample(8, LargestDraw())
        assert (actions == size - 1).all() and (obs[:, 0] == size - 1).all()


# ------------------------------------------------------------------ rollout buffer
def _vector_step(buf, t, done, valid):
    """One vector step whose obs and reward encode (t, column): obs = 10 t + i."""
    n = buf.num_envs
    code = 10.0 * t + np.arange(n)
    obs = np.repeat(code[:, None], buf.obs_dim, axis=1)
    buf.add(obs, np.arange(n) % 2, code, obs + 0.5, np.asarray(done, bool), np.zeros(n, bool),
            np.asarray(valid, bool))


def test_rollout_rows_are_time_major_and_reset_starts_over_without_carry():
    buf = RolloutBuffer(3, 2, 1)
    for t in range(3):
        assert not buf.ready
        _vector_step(buf, t, [False, t == 1], [True, t != 2])
    assert buf.ready
    batch = buf.batch()
    assert batch.shape == (3, 2) and batch.lengths.tolist() == [3, 3]
    assert batch.rewards.tolist() == [[0, 1], [10, 11], [20, 21]]
    assert batch.obs[:, :, 0].tolist() == [[0, 1], [10, 11], [20, 21]]
    assert batch.valid[:, 1].tolist() == [True, True, False]
    with pytest.raises(RuntimeError, match="before reset"):
        _vector_step(buf, 3, [False, False], [True, True])
    buf.reset()
    assert buf.t == 0 and buf.offset.tolist() == [0, 0] and not buf.ready


def test_rollout_carries_unfinished_episodes_over_and_grows_for_long_ones():
    buf = RolloutBuffer(3, 2, 1, carry_unfinished=True)
    # column 0: one episode running through the whole rollout; column 1: done at t=0, reset row t=1,
    # a new episode from t=2
    for t in range(3):
        _vector_step(buf, t, [False, t == 0], [True, t != 1])
    buf.reset()
    assert buf.offset.tolist() == [3, 1]       # column 1 keeps only its new episode, not the reset row
    assert buf.obs[:3, 0, 0].tolist() == [0, 10, 20] and buf.obs[0, 1, 0] == 21
    assert buf.cap == 6                        # 3 carried rows + a rollout: the storage grew
    for t in range(3, 6):
        _vector_step(buf, t, [t == 5, False], [True, True])
    batch = buf.batch()
    assert batch.lengths.tolist() == [6, 4] and batch.shape == (6, 2)
    assert batch.rewards[:, 0].tolist() == [0, 10, 20, 30, 40, 50]
    assert batch.rewards[:, 1].tolist() == [21, 31, 41, 51, 0, 0]
    assert batch.valid[:, 1].tolist() == [True] * 4 + [False] * 2      # padding rows are invalid
    assert batch.terminated[:, 0].tolist() == [False] * 5 + [True]


def test_rollout_state_dict_round_trip_continues_identically():
    buf = RolloutBuffer(3, 2, 1, carry_unfinished=True)
    for t in range(3):
        _vector_step(buf, t, [False, t == 0], [True, t != 1])
    buf.reset()
    _vector_step(buf, 3, [False, False], [True, True])
    fresh = RolloutBuffer(3, 2, 1, carry_unfinished=True)
    fresh.load_state_dict(buf.state_dict())
    assert (fresh.t, fresh.cap, fresh.offset.tolist()) == (buf.t, buf.cap, buf.offset.tolist())
    for b in (buf, fresh):
        for t in range(4, 6):
            _vector_step(b, t, [t == 5, False], [True, True])
    x, y = buf.batch(), fresh.batch()
    for key in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "valid", "lengths"):
        assert np.array_equal(getattr(x, key), getattr(y, key)), key
    bad = buf.state_dict()
    bad["obs"] = bad["obs"][:, :1]
    with pytest.raises(ValueError, match="rollout obs"):
        RolloutBuffer(3, 2, 1).load_state_dict(bad)
