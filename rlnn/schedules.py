"""Scalar schedules (learning rate, epsilon, ...) as pure functions of the step.

Each schedule is a small callable object, ``sched(step) -> float``.  It holds
no mutable state, so resuming a run only needs the step counter.

    constant(value)                             value
    linear(start, end, duration)                start -> end over `duration` steps, then end
    exponential(start, decay, end=None)         start * decay**step, clamped at end if given

``make(name, **kwargs)`` builds one by name and ``from_config(cfg)`` from a
number (constant) or a dict such as ``{"name": "linear", "start": 1.0,
"end": 0.05, "duration": 10000}``.  ``to_config()`` gives that dict back.
"""
import math

__all__ = ["Constant", "Linear", "Exponential", "constant", "linear", "exponential",
           "NAMES", "make", "from_config"]


class Constant:
    """f(step) = value."""

    name = "constant"

    def __init__(self, value):
        self.value = float(value)

    def __call__(self, step):
        return self.value

    def to_config(self):
        return {"name": self.name, "value": self.value}

    def __repr__(self):
        return f"constant({self.value!r})"


class Linear:
    """f(step) = start + (end - start) min(max(step / duration, 0), 1)."""

    name = "linear"

    def __init__(self, start, end, duration):
        if not duration > 0:
            raise ValueError(f"linear schedule duration must be > 0, got {duration!r}")
        self.start, self.end, self.duration = float(start), float(end), duration

    def __call__(self, step):
        frac = min(max(step / self.duration, 0.0), 1.0)
        return self.start + (self.end - self.start) * frac

    def to_config(self):
        return {"name": self.name, "start": self.start, "end": self.end,
                "duration": self.duration}

    def __repr__(self):
        return f"linear({self.start!r}, {self.end!r}, {self.duration!r})"


class Exponential:
    """f(step) = start * decay**step, never past ``end`` (if given).

    ``end`` acts as a floor when the schedule decreases (decay < 1) and as a
    ceiling when it increases.
    """

    name = "exponential"

    def __init__(self, start, decay, end=None):
        if not decay > 0:
            raise ValueError(f"exponential schedule decay must be > 0, got {decay!r}")
        self.start, self.decay = float(start), float(decay)
        self.end = None if end is None else float(end)

    def __call__(self, step):
        value = self.start * self.decay ** max(step, 0)
        if self.end is None or math.isnan(value):
            return value
        return max(value, self.end) if self.decay < 1 else min(value, self.end)

    def to_config(self):
        return {"name": self.name, "start": self.start, "decay": self.decay, "end": self.end}

    def __repr__(self):
        return f"exponential({self.start!r}, {self.decay!r}, end={self.end!r})"


constant, linear, exponential = Constant, Linear, Exponential
_REGISTRY = {"constant": Constant, "linear": Linear, "exponential": Exponential}
NAMES = tuple(_REGISTRY)


def make(name, **kwargs):
    """Schedule ``name`` built with ``kwargs``; ValueError for an unknown name or argument."""
    try:
        cls = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(NAMES)}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for {name} schedule {kwargs}: {err}") from None


def from_config(config):
    """A number -> constant(number); a dict -> make(**dict) (key "name" selects the kind);
    a schedule passes through."""
    if isinstance(config, (Constant, Linear, Exponential)):
        return config
    if isinstance(config, (int, float)) and not isinstance(config, bool):
        return Constant(config)
    if isinstance(config, dict):
        kwargs = dict(config)
        if "name" not in kwargs:
            raise ValueError(f"schedule config {config!r} needs a 'name' "
                             f"({', '.join(NAMES)})")
        return make(kwargs.pop("name"), **kwargs)
    raise ValueError(f"cannot build a schedule from {config!r}")
