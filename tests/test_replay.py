"""The replay ring buffer: wraparound, valid-row filtering, uniform sampling, state round trip."""

from __future__ import annotations

import numpy as np
import pytest

from agents.replay import ReplayBuffer


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
