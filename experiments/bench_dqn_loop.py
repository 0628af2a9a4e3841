"""Speed of the classic DQN loop: one env, one gradient step of batch 64 per env step, 64x64 ReLU net.

    python experiments/bench_dqn_loop.py [--steps 20000] [--seeds 0-2] [--set agent.dtype=float64]

Part 1 runs the whole training loop (``agents.loop.train``: env, acting, replay, Double-DQN learning,
TensorBoard/CSV logging; evaluation, checkpoints and network statistics off) per seed, and prints env
steps per second over the whole run and over the learning phase alone (after ``learning_starts``,
where every env step also takes a gradient step). The start of the learning phase is found without a
per-step callback: ``DQNAgent.train`` is swapped for one call only, which notes the time and
the env step, then puts the method back.

Part 2 runs the loop once more per seed with a timer around each of the four calls a step makes
(env.step, agent.act, agent.observe, agent.learn): their time per env step *in the run* (caches and
branch predictors shared with everything else, as in training), and "loop and logging", the rest of
the learning-phase step: the loop's own bookkeeping, episode and periodic logging, with what the
timers themselves cost in the run (a second timer around each first one tells) subtracted. These
are wall-clock times: on a machine busy with other work they include time the process waited.

Part 3 times each piece of one step on a warmed-up agent alone, in microseconds per call (best of 5
repeats): where a step's time goes.

    python experiments/bench_dqn_loop.py --against /path/to/other/checkout --pairs 10 [--seeds 0-1]

compares instead: pair i runs seed i (cycling through --seeds) for --steps env steps in the other
checkout, then in this one, each in a fresh process, and prints both learning-phase SPS per pair,
their medians and ratios. This machine's speed drifts by 10-20% within minutes; many short
alternations, each pair run back to back, let the drift hit both sides alike. The other checkout
needs ``experiments.bench_dqn_loop.run_loop(seed, steps, sets, logdir)``.

BLAS threads default to 1 (``import experiments`` sets it before NumPy is imported), as in the CLI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402,F401  (first: one BLAS thread)
import numpy as np  # noqa: E402

import envs  # noqa: E402
from agents.base import EnvInfo  # noqa: E402
from agents.dqn import DQNAgent  # noqa: E402
from agents.loop import train  # noqa: E402
from agents import config  # noqa: E402
from experiments.bench_nn import measure  # noqa: E402
from experiments.compare import parse_seeds  # noqa: E402
from rlnn import losses, optim  # noqa: E402

CLASSIC = ["run.num_envs=1", "agent.hidden_sizes=[64, 64]", "agent.activation=relu", "agent.batch_size=64",
           "agent.train_freq=1", "agent.gradient_steps=1", "agent.double_dqn=true", "agent.loss=huber",
           "run.eval_episodes=0", "run.checkpoint_every=100000000", "run.network_log_every=0"]


class _LearningStart:
    """Swaps ``DQNAgent.train`` for its first call only: notes the time and the env step (the
    replay rows added so far, one env) of the first gradient step, then puts the method back, so the
    run pays nothing per step for being measured. ``on_start()`` is called at that moment."""

    def __init__(self, on_start=None):
        self.time = self.step = None
        self._original, self._on_start = DQNAgent.train, on_start

    def __enter__(self):
        original, mark = self._original, self

        def first_train(agent, gradient_steps):
            DQNAgent.train = original
            mark.time, mark.step = time.perf_counter(), agent.buffer.added
            if mark._on_start is not None:
                mark._on_start()
            return original(agent, gradient_steps)

        DQNAgent.train = first_train
        return self

    def __exit__(self, *exc):
        DQNAgent.train = self._original
        return False


# The four calls a loop step makes, timed in Part 2: (class, method name, label).
STEP_CALLS = ((envs.EpisodeStatistics, "step", "env.step"), (DQNAgent, "act", "agent.act"),
              (DQNAgent, "observe", "agent.observe"), (DQNAgent, "learn", "agent.learn"))


def _timer(fn, acc: list, i: int):
    """fn, adding its seconds to acc[i] and keeping the end of the latest timed call in acc[-1]."""
    pc = time.perf_counter

    def timed(*args, **kwargs):
        start = pc()
        out = fn(*args, **kwargs)
        acc[-1] = end = pc()
        acc[i] += end - start
        return out
    return timed


def _config(seed: int, steps: int, sets: list[str], logdir: str):
    return config.build("dqn", "CartPole-v1", None, CLASSIC + sets,
                        {"seed": seed, "total_steps": steps, "logdir": logdir}, use_preset=False)


def run_loop(seed: int, steps: int, sets: list[str], logdir: str) -> dict:
    cfg = _config(seed, steps, sets, logdir)
    t0 = time.perf_counter()
    with _LearningStart() as learning:
        result = train("dqn", cfg.run, cfg.agent, console=False)
    t1 = time.perf_counter()
    learn_sps = ((result.step - learning.step) / (t1 - learning.time) if learning.time is not None
                 else float("nan"))
    return {"seed": seed, "steps": result.step, "sps": result.step / (t1 - t0), "learn_sps": learn_sps,
            "episodes": result.episodes, "agent_cfg": cfg.agent}


def run_timed_loop(seed: int, steps: int, sets: list[str], logdir: str) -> dict[str, float]:
    """Part 2: microseconds per env step of the learning phase, in the run: each of STEP_CALLS, the
    whole step, and "loop and logging", the rest. The phase ends with the last learn call: the final
    checkpoint and closing the logs are not in it.

    Each call gets two timers, one inside the other. The inner one times the call (its row in the
    table); the outer one times the call plus the inner timer, so outer - inner is what one timer
    costs in the run, and the loop's share is what remains of the step once the calls and both timers
    are taken out: step - outer - (outer - inner) per call."""
    cfg = _config(seed, steps, sets, logdir)
    k = len(STEP_CALLS)
    acc = [0.0] * (2 * k + 1)              # inner timers, outer timers, end of the latest call
    at_start: list[float] = []
    originals = [getattr(cls, name) for cls, name, _ in STEP_CALLS]
    try:
        for i, (cls, name, _) in enumerate(STEP_CALLS):
            setattr(cls, name, _timer(_timer(originals[i], acc, i), acc, k + i))
        with _LearningStart(on_start=lambda: at_start.extend(acc)) as learning:
            result = train("dqn", cfg.run, cfg.agent, console=False)
    finally:
        for (cls, name, _), fn in zip(STEP_CALLS, originals):
            setattr(cls, name, fn)
    if learning.time is None:
        return {}
    n = result.step - learning.step
    per_step = [(a - b) / n * 1e6 for a, b in zip(acc, at_start)]
    inner, outer = per_step[:k], per_step[k:2 * k]
    timers = sum(outer) - sum(inner)        # one timer on each call, per step
    step = (acc[-1] - learning.time) / n * 1e6 - 2 * timers
    us = {label: inner[i] for i, (_, _, label) in enumerate(STEP_CALLS)}
    return dict(us, **{"loop and logging": step - sum(inner), "step": step, "timers": timers})


def _us(fn) -> float:
    """Best microseconds per call over repeats (bench_nn's timer)."""
    return measure([fn], quick=False)[0][0]


def time_pieces(agent_cfg, seed: int = 0) -> list[tuple[str, float]]:
    """Microseconds per call of each piece of a classic-loop step, on an agent with a filled buffer."""
    env = envs.make_vec_env("CartPole-v1", 1, seed=seed)
    agent = DQNAgent(agent_cfg, EnvInfo.from_env(env), np.random.default_rng(seed))
    obs, _ = env.reset(seed=seed)
    valid = np.ones(1, bool)
    for step in range(5000):
        actions = agent.act(obs, step)
        next_obs, rewards, terminated, truncated, _ = env.step(actions)
        agent.observe(obs, actions, rewards, next_obs, terminated, truncated, valid)
        obs = next_obs
    late = 10**6                            # an env step with epsilon at its end value: mostly greedy actions
    c, q, target = agent.config, agent.q, agent.target
    b = c.batch_size
    state = {"obs": obs}

    def env_step():   # a pole-balancing policy, so episodes are long as in late training
        state["obs"] = env.step(np.array([int(state["obs"][0, 3] > 0)]))[0]

    o, a, r, no, te = (x[0] for x in agent.buffer.sample(b, agent.rng, 1))
    rows = np.arange(b)
    q_next_target = target.predict(no)
    q_next_online = q.forward(no)

    def double_dqn_targets():
        return r * c.reward_scale + c.gamma * (1.0 - te) * q_next_target[rows, q_next_online.argmax(axis=1)]

    y = double_dqn_targets()
    q_sa = q.forward(o)[rows, a]
    _, dq_sa = losses.huber(q_sa, y)
    dq = np.zeros((b, q_next_online.shape[1]), q_next_online.dtype)
    dq[rows, a] = dq_sa
    pieces = [
        ("env.step (SyncVectorEnv + EpisodeStatistics)", _us(env_step)),
        ("agent.act (epsilon-greedy, one observation)", _us(lambda: agent.act(obs, late))),
        ("agent.observe (replay add)", _us(lambda: agent.observe(obs, a[:1], r[:1], obs, te[:1], te[:1] > 0, valid))),
        ("replay sample, batch 64", _us(lambda: agent.buffer.sample(b, agent.rng, 1))),
        ("target net predict Q(s', .), 64 rows", _us(lambda: target.predict(no))),
        ("online net forward Q(s', .), 64 rows", _us(lambda: q.forward(no))),
        ("online net forward Q(s, .), 64 rows", _us(lambda: q.forward(o))),
        ("Double-DQN TD targets", _us(double_dqn_targets)),
        ("huber loss and dL/dQ(s, a)", _us(lambda: losses.huber(q_sa, y))),
        ("online net backward, 64 rows", _us(lambda: (q.forward(o), q.backward(dq, input_grad=False)))
         - _us(lambda: q.forward(o))),
        ("clip_grad_norm + Adam step", _us(lambda: (optim.clip_grad_norm(q.flat_grads, c.max_grad_norm),
                                                      agent.opt.step()))),
        ("agent.learn: one whole training step", _us(lambda: agent.train(1))),
    ]
    env.close()
    return pieces


# Run in a fresh process with a checkout's root first on sys.path: one run_loop, its learning-phase SPS.
_ONE_RUN = """import sys, tempfile
root, seed, steps, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
sys.path.insert(0, root)
from experiments.bench_dqn_loop import run_loop
print(run_loop(seed, steps, sets, tempfile.mkdtemp(prefix="bench_dqn_loop_"))["learn_sps"])
"""


def _learn_sps_in(root: str, seed: int, steps: int, sets: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": root}     # the checkout's own packages, not an installed rlnn
    done = subprocess.run([sys.executable, "-c", _ONE_RUN, root, str(seed), str(steps), *sets], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise SystemExit(f"the run in {root} failed: {last}")
    return float(done.stdout.split()[-1])


def compare(other: str, pairs: int, seeds: list[int], steps: int, sets: list[str]) -> None:
    """Alternate runs of the other checkout and this one; print SPS per pair, medians and ratios."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"classic DQN loop, learning-phase SPS: {other} (other) then {here} (this), {steps:,} env steps per run\n")
    print("| pair | seed | other | this | ratio |")
    print("|---|---|---|---|---|")
    theirs, ours = [], []
    for i in range(pairs):
        seed = seeds[i % len(seeds)]
        theirs.append(_learn_sps_in(other, seed, steps, sets))
        ours.append(_learn_sps_in(here, seed, steps, sets))
        print(f"| {i} | {seed} | {theirs[-1]:,.0f} | {ours[-1]:,.0f} | {ours[-1] / theirs[-1]:.2f} |", flush=True)
    ratios = [b / a for a, b in zip(theirs, ours)]
    print(f"\nmedian SPS: other {statistics.median(theirs):,.0f} ({min(theirs):,.0f}-{max(theirs):,.0f}), "
          f"this {statistics.median(ours):,.0f} ({min(ours):,.0f}-{max(ours):,.0f}); ratio of the medians "
          f"{statistics.median(ours) / statistics.median(theirs):.3f}, median ratio of a pair "
          f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--set", action="append", default=[], help="extra config, e.g. agent.dtype=float64")
    p.add_argument("--against", metavar="CHECKOUT", help="compare with the loop of another checkout of rlnn")
    p.add_argument("--pairs", type=int, default=10, help="with --against: runs of each (default 10)")
    args = p.parse_args(argv)
    if args.against is not None:
        if not os.path.isfile(os.path.join(args.against, "experiments", "bench_dqn_loop.py")):
            p.error(f"--against {args.against}: not a checkout of rlnn (no experiments/bench_dqn_loop.py there)")
        if args.pairs < 1:
            p.error(f"--pairs {args.pairs}: must be at least 1")
        compare(os.path.abspath(args.against), args.pairs, parse_seeds(args.seeds), args.steps, args.set)
        return 0
    logdir = tempfile.mkdtemp(prefix="bench_dqn_loop_")
    rows = []
    for seed in parse_seeds(args.seeds):
        rows.append(run_loop(seed, args.steps, args.set, logdir))
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    cfg = rows[0]["agent_cfg"]
    print(f"\nclassic DQN loop on CartPole-v1: 1 env, {cfg.hidden_sizes} {cfg.activation} {cfg.dtype}, "
          f"batch {cfg.batch_size}, {cfg.gradient_steps} gradient step per {cfg.train_freq} env step, "
          f"{cfg.loss} loss, double_dqn={cfg.double_dqn}, learning_starts={cfg.learning_starts}\n")
    print("| seed | env steps | episodes | SPS (whole run) | SPS (learning phase) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['steps']:,} | {r['episodes']:,} | {r['sps']:,.0f} | {r['learn_sps']:,.0f} |")
    learn_sps = float(np.median([r["learn_sps"] for r in rows]))
    print(f"\nmedian SPS while learning: {learn_sps:,.0f} ({1e6 / learn_sps:,.0f} us per env step)\n")

    timed = [run_timed_loop(seed, args.steps, args.set, logdir) for seed in parse_seeds(args.seeds)]
    in_run = {key: float(np.median([t[key] for t in timed])) for key in timed[0]} if timed[0] else {}
    print(f"in the run (median over seeds of a second, timed run; its timers, {in_run.get('timers', float('nan')):.1f} "
          f"us per step, subtracted): {in_run.get('step', float('nan')):,.0f} us per learning-phase env step\n")

    pieces = time_pieces(cfg)
    labels = {"env.step (SyncVectorEnv + EpisodeStatistics)": "env.step",
              "agent.act (epsilon-greedy, one observation)": "agent.act",
              "agent.observe (replay add)": "agent.observe", "agent.learn: one whole training step": "agent.learn"}
    print("| piece of one env step | us per call, alone | us per env step, in the run |")
    print("|---|---|---|")
    for name, us in pieces:
        run_us = in_run.get(labels.get(name, ""))
        print(f"| {name} | {us:,.1f} | {'' if run_us is None else f'{run_us:,.1f}'} |")
    print(f"| loop and logging (the rest of the step, in the run) | | {in_run.get('loop and logging', float('nan')):,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
