"""rlnn.schedules: values as a pure function of the step, construction by name."""
import pytest

from rlnn import schedules


def test_constant():
    s = schedules.constant(0.3)
    assert s(0) == s(10 ** 9) == 0.3


def test_linear_interpolates_then_clamps():
    s = schedules.linear(1.0, 0.1, 100)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.55)
    assert s(100) == pytest.approx(0.1)
    assert s(10 ** 6) == pytest.approx(0.1)
    assert s(-5) == 1.0
    assert schedules.linear(0.0, 2.0, 4)(1) == pytest.approx(0.5)   # increasing works too


def test_exponential_with_and_without_floor():
    s = schedules.exponential(1.0, 0.5)
    assert [s(t) for t in range(4)] == [1.0, 0.5, 0.25, 0.125]
    floored = schedules.exponential(1.0, 0.5, end=0.2)
    assert floored(2) == 0.25 and floored(3) == 0.2 and floored(100) == 0.2
    capped = schedules.exponential(1.0, 2.0, end=5.0)
    assert capped(2) == 4.0 and capped(3) == 5.0


def test_state_is_a_pure_function_of_step():
    s = schedules.linear(1.0, 0.0, 10)
    values = [s(t) for t in range(12)]
    assert [s(t) for t in range(12)] == values       # no hidden state advanced by calls
    assert s(7) == schedules.linear(1.0, 0.0, 10)(7)


def test_make_and_from_config_round_trip():
    s = schedules.make("linear", start=1.0, end=0.05, duration=1000)
    assert s(500) == pytest.approx(0.525)
    again = schedules.from_config(s.to_config())
    assert again(500) == s(500)
    assert schedules.from_config(3e-4)(123) == 3e-4
    e = schedules.from_config({"name": "exponential", "start": 2.0, "decay": 0.9, "end": 1.0})
    assert e(1) == pytest.approx(1.8)
    assert schedules.from_config(e) is e


def test_bad_names_and_arguments():
    with pytest.raises(ValueError) as info:
        schedules.make("cosine", start=1.0)
    for name in ("cosine", "constant", "linear", "exponential"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="duration"):
        schedules.linear(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="decay"):
        schedules.exponential(1.0, 0.0)
    with pytest.raises(ValueError, match="bad arguments"):
        schedules.make("linear", start=1.0)
    with pytest.raises(ValueError, match="name"):
        schedules.from_config({"start": 1.0})
    with pytest.raises(ValueError):
        schedules.from_config("fast")
