"""``rlnn config [ALGO]``: every config key with its type, default and meaning, from the dataclasses.

The meanings are the comments on the fields of ``agents.config.RunConfig`` and of each algorithm's
config class (``agents.config.describe``); ``docs/config.md`` is this command's ``--markdown`` output
(a test keeps it current: ``rlnn config --markdown > docs/config.md`` remakes it).
"""

from __future__ import annotations

import argparse
import json
import sys

from agents import ALGOS
from agents.config import RunConfig, describe
from agents.registry import canonical, get_algo

HEADER = ("# Config reference\n\nEvery key of a run's config: the TOML `[run]` and `[agent]` tables, `--set section.key=value`,\n"
          "and the keyword arguments of the script API. Defaults are the dataclasses'; a preset for (algo, env)\n"
          "(`rlnn list`) overrides some of them. Made by `rlnn config --markdown`.\n")


def _value(v) -> str:
    """A default as it is written in TOML or --set (none: the key's "not set")."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:_}" if abs(v) >= 10_000 else str(v)
    return json.dumps(v) if isinstance(v, (str, list, dict)) else repr(v)


def _sections(algos: list[str]) -> list[tuple[str, str, list]]:
    """(title, how to set it, rows) per table: the [run] table, then each algorithm's [agent] table."""
    out = [("[run]: every algorithm", "agents.config.RunConfig; --set run.KEY=VALUE", describe(RunConfig))]
    for algo in algos:
        config_cls, _ = get_algo(algo)
        out.append((f"[agent] of {algo}", f"{config_cls.__module__}.{config_cls.__name__}; "
                    f"--set agent.KEY=VALUE or {algo}.KEY=VALUE", describe(config_cls)))
    return out


def text(algos: list[str]) -> str:
    lines = []
    for title, how, rows in _sections(algos):
        width = max(len(key) for key, *_ in rows)
        lines += [f"{title} ({how})"]
        lines += [f"  {key:<{width}}  {kind:<12} {_value(default):<14} {doc}" for key, kind, default, doc in rows]
        lines.append("")
    return "\n".join(lines)


def markdown(algos: list[str]) -> str:
    parts = [HEADER]
    for title, how, rows in _sections(algos):
        parts.append(f"## {title}\n\n`{how}`\n\n| key | type | default | meaning |\n|---|---|---|---|")
        parts += [f"| `{key}` | {kind.replace('|', chr(92) + '|')} | `{_value(default)}` | {doc.replace('|', chr(92) + '|')} |"
                  for key, kind, default, doc in rows]
        parts.append("")
    return "\n".join(parts)


def cmd_config(args: argparse.Namespace) -> int:
    algos = [canonical(args.algo)] if args.algo else [name for name in ALGOS]
    sys.stdout.write(markdown(algos) if args.markdown else text(algos))
    return 0


def register(sub) -> None:
    c = sub.add_parser("config", help="every config key of an algorithm: type, default and meaning")
    c.add_argument("algo", nargs="?", help=f"one of {', '.join(ALGOS)} (default: all, with the [run] keys)")
    c.add_argument("--markdown", action="store_true", help="a Markdown document (docs/config.md is this, for all)")
    c.set_defaults(func=cmd_config)
