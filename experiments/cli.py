"""The ``rlnn`` command: train, eval, list (and the commands later modules add).

User mistakes (bad arguments, config keys or values, unknown env or algorithm, unreadable checkpoints or
run files) print one line ``rlnn: error: ...`` (argparse's own: ``rlnn CMD: error: ...``) and exit 2, with
no traceback. Failures (a diverged run, a full disk) print one line naming what failed and exit 1; an
interrupted command exits 130. Console output goes through ``agents.console``: a reader that went away
(``rlnn train | head``) silences it, and the command runs on to its end.
"""

from __future__ import annotations

import argparse
import math
import sys
from importlib.metadata import PackageNotFoundError, version

import experiments  # noqa: F401  (first: pins BLAS threads before NumPy loads)
from agents import ALGOS, UnknownAlgo
from agents.config import ConfigError
from agents.loop import TrainingDiverged
from envs import EnvError
from rlnn.checkpoint import CheckpointError



def _version() -> str:
    try:
        return version("rlnn")
    except PackageNotFoundError:
        return "0+unknown"


class UsageError(ValueError):
    pass


USER_ERRORS = (ConfigError, EnvError, CheckpointError, UnknownAlgo, UsageError)


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors in one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(low: int):
    """An argparse type: an int >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not allowed: must be "
                                             f"{'0 or more' if low == 0 else f'at least {low}'}")
        return value

    parse.__name__ = "int"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value} is not allowed: must be a finite number > 0")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from agents import config
    from agents.loop import train

    if args.resume:
        cfg = config.resumed(args.resume, args.algo, args.total_steps, args.set, env=args.env, seed=args.seed,
                             config=args.config, logdir=args.logdir, run_dir=args.run_dir)
        result = train(cfg.algo, cfg.run, cfg.agent, run_dir=args.resume, resume=True, console=not args.quiet,
                       checkpoint=args.checkpoint)
    else:
        if args.checkpoint:
            raise ConfigError("--checkpoint needs --resume RUN_DIR")
        overrides = {"seed": args.seed, "total_steps": args.total_steps, "logdir": args.logdir}
        cfg = config.build(args.algo, args.env, args.config, args.set, overrides)
        if not args.quiet:
            sources = [f"preset {cfg.preset}" if cfg.preset else "defaults"] + ([args.config] if args.config else [])
            print(f"rlnn train: {cfg.algo} on {cfg.run.env_id}, seed {cfg.run.seed}, "
                  f"{cfg.run.total_steps:,} steps ({' + '.join(sources)})")
            if cfg.preset is None:
                print(f"rlnn train: no preset for {cfg.algo} on {cfg.run.env_id} (rlnn list shows them): "
                      f"the agent's defaults are used")
        result = train(cfg.algo, cfg.run, cfg.agent, run_dir=args.run_dir, console=not args.quiet)
    if result.evals and not args.quiet:
        last = result.evals[-1]
        what = ("final greedy eval" if result.status != "interrupted"
                else f"interrupted at step {result.step:,}; last greedy eval")
        print(f"{what} at step {last.step:,}: {last.mean:.1f} ± {last.std:.1f}")
    return 130 if result.status == "interrupted" else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from experiments.evaluate import evaluate_run

    return evaluate_run(args.run_dir, episodes=args.episodes, render=args.render, gif=args.gif, seed=args.seed,
                        checkpoint=args.checkpoint)


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """TensorBoard on DIR, from this Python environment (the ``watch:`` line of a run prints this command)."""
    import os

    if not os.path.isdir(args.logdir):
        raise UsageError(f"{args.logdir}: no such directory (give a run directory or the folder of several)")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--host", args.host,
           "--port", str(args.port), "--samples_per_plugin", f"scalars={args.samples}"]
    sys.stdout.flush()
    os.execv(sys.executable, cmd)       # TensorBoard takes this process over: signals reach it directly


def cmd_list(args: argparse.Namespace) -> int:
    from agents import config

    print("algorithms:")
    for name in ALGOS:
        print(f"  {name}")
    print("presets (experiments/configs/):")
    presets = config.presets()
    width = max(map(len, presets), default=0)
    for name, doc in presets.items():
        run = doc.get("run", {})
        print(f"  {name:<{width}}  algo={doc.get('algo')}  env={run.get('env_id', 'CartPole-v1')}  "
              f"total_steps={run.get('total_steps', '-')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="rlnn", description="Reinforcement learning with a hand-written NumPy MLP.")
    p.add_argument("--version", action="version", version=f"rlnn {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train an agent (or resume a run)")
    t.add_argument("--algo", type=str.lower, help=f"algorithm: {', '.join(ALGOS)} (default: the --config "
                   "file's algo, else pg); any case")
    t.add_argument("--env", help="Gymnasium env id, or module:EnvId for your own env (default: the --config "
                   "file's, else CartPole-v1)")
    t.add_argument("--seed", type=int, help="the run's seed: network init, exploration, env resets (default 0)")
    t.add_argument("--total-steps", type=int, help="the run's total env steps, also when resuming "
                   "(default: the preset's, else 100,000)")
    t.add_argument("--config", help="a TOML file with algo, [run] and [agent] tables (rlnn config lists the keys)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. agent.lr=1e-3 or run.num_envs=4 (repeatable; "
                   "rlnn config ALGO lists the keys)")
    t.add_argument("--logdir", help="parent directory of run directories (default runs)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint "
                   "(--set may change learning rates, epsilon, clipping, cadences and total_steps)")
    t.add_argument("--checkpoint", metavar="step_N", help="with --resume: start from this checkpoint "
                   "(step_N or best; default: the latest)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--run-dir", help=argparse.SUPPRESS)  # set by `rlnn compare` for its workers
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="greedy evaluation of a run's checkpoint on fresh envs")
    e.add_argument("run_dir", metavar="RUN", help="a run directory, or a saved model file (.npz)")
    e.add_argument("--episodes", type=int_at_least(1), default=20, help="greedy episodes (default 20)")
    e.add_argument("--seed", type=int_at_least(0), default=12345, help="seed of the evaluation envs' resets (default 12345)")
    e.add_argument("--checkpoint", default="latest", metavar="NAME",
                   help="latest, best (the best greedy evaluation) or step_N (default latest)")
    e.add_argument("--render", action="store_true", help="show one episode in a window (needs rlnn[render])")
    e.add_argument("--gif", metavar="FILE", help="save one episode as an animated GIF (needs rlnn[render])")
    e.set_defaults(func=cmd_eval)

    ls = sub.add_parser("list", help="algorithms and presets")
    ls.set_defaults(func=cmd_list)

    tb = sub.add_parser("tensorboard", help="start TensorBoard on a run directory or a folder of runs")
    tb.add_argument("logdir", metavar="DIR", help="a run directory, or a folder of them (runs, a compare or sweep)")
    tb.add_argument("--port", type=int, default=6006, help="port to serve on (default 6006; 0: a free one)")
    tb.add_argument("--host", default="localhost", help="address to serve on (default localhost)")
    tb.add_argument("--samples", type=int, default=0,
                    help="scalar points kept per tag (default 0: all; TensorBoard's own default samples 1000)")
    tb.set_defaults(func=cmd_tensorboard)

    for register in _extensions():
        register(sub)
    return p


def _extensions():
    """Subcommands defined in other experiments modules (compare, report, check-gradients, ...)."""
    import importlib

    for module in ("experiments.compare", "experiments.gradcheck_cmd", "experiments.sweep", "experiments.config_cmd"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            raise
        yield mod.register


def main(argv: list[str] | None = None) -> int:
    from agents.console import console_stream

    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = console_stream(sys.stdout), console_stream(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> int:
    from experiments.executor import die_with_parent

    die_with_parent()       # a worker of `rlnn compare` / `rlnn sweep` ends with it, even after kill -9
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"rlnn: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"rlnn: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:   # disk full, read-only directory, ...: name the file; earlier checkpoints stay whole
        print(f"rlnn: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rlnn: interrupted", file=sys.stderr)
        return 130


def describe_os_error(e: OSError) -> str:
    """``path: reason`` (or the reason alone when the error names no file)."""
    reason = e.strerror or str(e)
    return f"{e.filename}: {reason}" if e.filename else reason


if __name__ == "__main__":
    sys.exit(main())
