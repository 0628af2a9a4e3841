"""What makes a command that runs many jobs resumable: its plan on disk (``SpecFile``), and Ctrl-C anywhere
in it ending with the line that finishes the work (``resumable``)."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Callable, ClassVar

from agents.config import ConfigError, coerce
from agents.rundir import read_json, write_json
from experiments.executor.base import Interrupted


def resumable(command: str, directory: str, body: Callable[[], int], stream) -> int:
    """``body()``; Ctrl-C anywhere in it (the executor, the summaries, the report) exits 130 with the command
    that finishes the work, since everything finished so far is on disk and kept."""
    try:
        return body()
    except KeyboardInterrupt as e:
        detail = f" ({e.summary()})" if isinstance(e, Interrupted) else ""
        print(f"{command} interrupted{detail}; finished runs are kept. Finish it with: rlnn {command} --resume "
              f"{directory}", file=stream, flush=True)
        return 130


class SpecFile:
    """Mixin of a command's frozen spec dataclass: JSON (``FILE``) in the command's directory, read back by
    ``--resume``, so that it plans the same runs again. Every field is checked against its type (lists in
    the JSON become tuples: the dataclass is frozen); unknown keys are ignored."""

    FILE: ClassVar[str]
    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The spec, every field checked against its type (ConfigError naming the first bad one)."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = coerce(data[f.name], hints[f.name], f.name)
            elif f.default is dataclasses.MISSING:
                raise ConfigError(f"no {f.name}")
        return cls(**values)

    def write(self, directory: str) -> None:
        write_json(os.path.join(directory, self.FILE), self.to_dict())

    @classmethod
    def read(cls, directory: str):
        path = os.path.join(directory, cls.FILE)
        if not os.path.isfile(path):
            raise ConfigError(f"{directory}: not a {cls.KIND} directory (no {cls.FILE})")
        try:
            return cls.from_dict(read_json(path))
        except ConfigError as e:
            raise ConfigError(f"{path}: not a {cls.KIND} plan: {e}") from None
