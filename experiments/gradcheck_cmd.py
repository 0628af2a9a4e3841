"""``rlnn check-gradients``: prove an agent's backward pass right on a real batch.

Builds the agent of ``--algo`` (with its preset or ``--config``, in float64), collects a batch of real
transitions from its environment, and for every loss the agent trains compares the analytic gradient of
each layer (and of a Gaussian policy's log-std) with central finite differences (``rlnn.gradcheck``). Prints the max relative error per layer
(as ‖a − n‖ / (‖a‖ + ‖n‖) over the layer, and the largest elementwise error) and exits 1 when a
layer's norm ratio is above ``--tolerance``: change an activation or a loss, run this, and know.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

import envs
from agents import config, get_algo
from agents.registry import check_run
from agents.base import EnvInfo
from rlnn.gradcheck import numerical_gradient, relative_error


def collect_batch(env_id: str, agent, steps: int, seed: int) -> dict[str, np.ndarray]:
    """``steps`` real transitions of one env, acting with the (untrained) agent as the loop would."""
    env = envs.make_vec_env(env_id, 1, seed=seed)
    obs, _ = env.reset(seed=seed)
    rows = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")}
    prev_done = False
    while len(rows["obs"]) < steps:
        actions = agent.act(obs, len(rows["obs"]))        # the env-step counter: transitions so far
        next_obs, rewards, terminated, truncated, _ = env.step(actions)
        if not prev_done:
            for k, v in zip(rows, (obs, actions, rewards, next_obs, terminated, truncated)):
                rows[k].append(v[0])
        prev_done = bool(terminated[0] or truncated[0])
        obs = next_obs
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


def blocks(net) -> list[tuple[str, tuple[int, ...], int]]:
    """(label, shape, size) of each part of ``net.flat_params`` checked on its own: an MLP's layers (W_t, b_t,
    labelled by W_t's shape), or a policy head's one parameter vector (its log-std)."""
    if not hasattr(net, "num_layers"):
        return [(net.param_name, net.flat_params.shape, net.flat_params.size)]
    return [(f"layer{t + 1}", net.params[2 * t].shape, net.params[2 * t].size + net.params[2 * t + 1].size)
            for t in range(net.num_layers)]


def layer_errors(net, closure, eps: float = 1e-7) -> list[tuple[float, float]]:
    """Per block (``blocks``): (‖a − n‖ / (‖a‖ + ‖n‖), max elementwise relative error) of its gradient.

    a is the analytic gradient, n central differences. The norm ratio is the verdict: elements whose
    true gradient is below the finite-difference noise (~1e-16 |L| / eps ≈ 1e-10) make the elementwise
    maximum large for a correct gradient, while a wrong derivative moves the norm ratio to ~1e-2.
    """
    closure()
    analytic = net.flat_grads.copy()
    numeric = numerical_gradient(closure, net.flat_params, eps=eps)
    errors, offset = [], 0
    for _, _, size in blocks(net):
        a, n = analytic[offset:offset + size], numeric[offset:offset + size]
        norm_error = float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-30))
        errors.append((norm_error, relative_error(a, n)))
        offset += size
    return errors


def check_agent(algo: str, run_cfg, agent_cfg, batch_size: int = 32, seed: int = 0, stream=None,
                eps: float = 1e-7) -> float:
    import sys

    stream = stream or sys.stdout
    config_cls, agent_cls = get_algo(algo)
    if "dtype" in {f.name for f in dataclasses.fields(agent_cfg)}:
        agent_cfg = dataclasses.replace(agent_cfg, dtype="float64")
    probe = envs.make_vec_env(run_cfg.env_id, 1, seed=seed)
    info = EnvInfo.from_env(probe)
    probe.close()
    agent = agent_cls(agent_cfg, info.with_num_envs(1), np.random.default_rng(seed))
    batch = collect_batch(run_cfg.env_id, agent, batch_size, seed)
    checks = agent.gradient_checks(batch)
    if not checks:
        print(f"{algo}: no trainable networks to check", file=stream)
        return 0.0
    worst = 0.0
    print(f"{algo} on {run_cfg.env_id}: gradient check on a batch of {batch_size} real transitions (float64)",
          file=stream)
    print(f"  {'loss':<18} {'layer':<7} {'W shape':<10} {'‖a−n‖/(‖a‖+‖n‖)':>16} {'max elementwise':>16}", file=stream)
    for loss_name, (nets, closure) in checks.items():
        for net in nets if isinstance(nets, (list, tuple)) else [nets]:
            for (label, shape, _), (err, elementwise) in zip(blocks(net), layer_errors(net, closure, eps)):
                worst = max(worst, err)
                print(f"  {loss_name:<18} {label:<7} {tuple(shape)!s:<10} {err:>16.2e} {elementwise:>16.2e}",
                      file=stream)
    return worst


def cmd_check_gradients(args: argparse.Namespace) -> int:
    cfg = config.build(args.algo, args.env, args.config, args.set)
    check_run(cfg)          # sizes no machine has, among others: one line before anything is built
    worst = check_agent(args.algo, cfg.run, cfg.agent, batch_size=args.batch_size, seed=args.seed, eps=args.eps)
    ok = worst <= args.tolerance
    print(f"{'OK' if ok else 'FAILED'}: worst error {worst:.2e} (tolerance {args.tolerance:.0e})")
    return 0 if ok else 1


def register(sub) -> None:
    from agents import ALGOS
    from experiments.cli import int_at_least, positive_float

    g = sub.add_parser("check-gradients", help="finite-difference check of an agent's backward pass",
                       description="Every loss of an agent, on real transitions of its env, checked layer by layer "
                                   "against central finite differences in float64; exit 1 if a layer fails.")
    g.add_argument("--algo", required=True, choices=[a for a in ALGOS if a != "random"], help="the agent to check")
    g.add_argument("--env", default=None, help="Gymnasium env id or module:EnvId (default: the --config file's, "
                                               "else CartPole-v1)")
    g.add_argument("--config", help="a TOML file with algo, [run] and [agent] tables (its network is checked)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. agent.hidden_sizes=[32,32] (repeatable)")
    g.add_argument("--batch-size", type=int_at_least(1), default=32,
                   help="transitions in the checked batch (default 32)")
    g.add_argument("--seed", type=int_at_least(0), default=0, help="network init and transitions (default 0)")
    g.add_argument("--eps", type=positive_float, default=1e-7,
                   help="finite-difference step (default 1e-7); small, so that few ReLU pre-activations are "
                        "within eps of their kink")
    g.add_argument("--tolerance", type=positive_float, default=1e-4,
                   help="largest allowed norm ratio per layer (default 1e-4; a wrong derivative gives ~1e-2, "
                        "ReLU kinks ~1e-5)")
    g.set_defaults(func=cmd_check_gradients)
