"""The ``rlnn`` command: train, eval, list (and the commands later modules add).

User mistakes (bad config keys or values, unknown env or algorithm, unreadable checkpoints) print one
line ``rlnn: error: ...`` and exit 2, with no traceback. A diverged run exits 1, an interrupted one 130.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

import experiments  # noqa: F401  (first: pins BLAS threads before NumPy loads)
from agents import ALGOS, UnknownAlgo
from agents.config import ConfigError
from agents.loop import TrainingDiverged
from envs import EnvError
from rlnn.checkpoint import CheckpointError

USER_ERRORS = (ConfigError, EnvError, CheckpointError, UnknownAlgo)


def _version() -> str:
    try:
        return version("rlnn")
    except PackageNotFoundError:
        return "0+unknown"


class UsageError(ValueError):
    pass


def cmd_train(args: argparse.Namespace) -> int:
    from agents import config
    from agents.loop import train

    if args.resume:
        cfg = resumed_config(args)
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


def resumed_config(args: argparse.Namespace):
    """The run's own config with ``--total-steps`` and ``--set`` applied (the loop refuses keys a run
    cannot change); flags that would start a different run are refused here."""
    from agents import config
    from agents.rundir import RunDir

    for flag in ("env", "seed", "config", "logdir", "run_dir"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} cannot be used with --resume: a run keeps its "
                              "env, seed and configuration; change what may change with --set")
    rd = RunDir(args.resume)
    saved = config.TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
    if args.algo and args.algo != saved.algo:
        raise ConfigError(f"--algo {args.algo} does not match the run's algorithm {saved.algo}")
    run_cfg, agent_cfg = config.apply_sets(config.parse_sets(args.set), saved.algo, saved.run, saved.agent)
    if args.total_steps is not None:
        run_cfg = config.update(run_cfg, {"total_steps": args.total_steps}, "run")
    return config.TrainConfig(saved.algo, run_cfg, agent_cfg)


def cmd_eval(args: argparse.Namespace) -> int:
    from experiments.evaluate import evaluate_run

    return evaluate_run(args.run_dir, episodes=args.episodes, render=args.render, gif=args.gif, seed=args.seed)


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
    p = argparse.ArgumentParser(prog="rlnn", description="Reinforcement learning with a hand-written NumPy MLP.")
    p.add_argument("--version", action="version", version=f"rlnn {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train an agent (or resume a run)")
    t.add_argument("--algo", choices=list(ALGOS), help="algorithm (default: the --config file's algo, else pg)")
    t.add_argument("--env", help="Gymnasium env id (default CartPole-v1)")
    t.add_argument("--seed", type=int)
    t.add_argument("--total-steps", type=int, help="the run's total env steps (also when resuming)")
    t.add_argument("--config", help="a TOML file with algo, [run] and [agent] tables")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. agent.lr=1e-3 or run.num_envs=4 (repeatable)")
    t.add_argument("--logdir", help="parent directory of run directories (default runs)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint "
                   "(--set may change learning rates, epsilon, clipping, cadences and total_steps)")
    t.add_argument("--checkpoint", metavar="step_N", help="with --resume: start from this checkpoint, not the latest")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--run-dir", help=argparse.SUPPRESS)  # set by `rlnn compare` for its workers
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="greedy evaluation of a run's latest checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=20)
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--render", action="store_true", help="show episodes in a window (needs rlnn[render])")
    e.add_argument("--gif", metavar="FILE", help="save one episode as an animated GIF (needs rlnn[render])")
    e.set_defaults(func=cmd_eval)

    ls = sub.add_parser("list", help="algorithms and presets")
    ls.set_defaults(func=cmd_list)

    for register in _extensions():
        register(sub)
    return p


def _extensions():
    """Subcommands defined in other experiments modules (compare, report, check-gradients, ...)."""
    import importlib

    for module in ("experiments.compare", "experiments.report", "experiments.gradcheck_cmd", "experiments.sweep"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            raise
        yield mod.register


def main(argv: list[str] | None = None) -> int:
    from experiments.pool import die_with_parent

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
        print(f"rlnn: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rlnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
