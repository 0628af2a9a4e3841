"""Microbenchmark of rlnn's training step and acting path against plain NumPy.

    python experiments/bench_nn.py [--quick] [--threads N] [--activation tanh]
    python -m experiments.bench_nn --quick

One training step = forward + l2 loss + backward + Adam step.  "reference" is
the straightforward per-layer NumPy version (``rlnn/reference.py``): fresh
arrays for every operation and one Adam update loop per tensor.  "predict" is the cost
of acting on one observation.  Times are microseconds per call: the best and
the median over N repeats, each repeat averaging many calls (timeit style).

For these sizes multi-threaded BLAS mostly adds synchronisation overhead, so
OPENBLAS_NUM_THREADS (and friends) default to 1 unless already set or
--threads is given; this must happen before NumPy is imported.
"""
import argparse
import os
import sys


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: env value, else 1)")
    parser.add_argument("--activation", default="tanh", help="hidden activation (default tanh)")
    return parser.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if ARGS.threads is not None:
            os.environ[var] = str(ARGS.threads)
        else:
            os.environ.setdefault(var, "1")

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

try:
    import rlnn  # noqa: E402,F401  (only checks importability)
except ImportError:                      # run as a script from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import rlnn  # noqa: E402,F401  (only checks importability)

from rlnn import MLP, activations, losses, optim  # noqa: E402
from rlnn.reference import ReferenceMLP, check_reference_agrees, make_rlnn_step  # noqa: E402

SIZES = ([4, 64, 64, 2], [4, 256, 256, 2])
BATCHES = (1, 64, 256)
DTYPES = (np.float32, np.float64)
TARGETS_US = {  # (sizes, batch, dtype) -> target for the rlnn train step
    ((4, 64, 64, 2), 64, "float32"): 60.0,
    ((4, 256, 256, 2), 64, "float32"): 450.0,
}
PREDICT_TARGET_US = 6.0


# ----------------------------------------------------------------- timing
def _calls_per_repeat(fn, budget):
    """How many calls of fn take about `budget` seconds (after a warm-up)."""
    for _ in range(3):
        fn()                                   # warm-up: workspaces, caches
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 4:
            return max(1, int(number * budget / elapsed))
        number *= 4


def measure(fns, quick):
    """[(best, median) microseconds per call] for each function in fns.

    Repeats of the functions are interleaved, so a burst of load from other
    processes hits all of them alike instead of skewing one row.
    """
    budget = 0.02 if quick else 0.1            # seconds per repeat and function
    repeats = 5 if quick else 15
    numbers = [_calls_per_repeat(fn, budget) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, number, record in zip(fns, numbers, times):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            record.append((time.perf_counter() - start) / number * 1e6)
    return [(min(t), statistics.median(t)) for t in times]


def main(args):
    check_reference_agrees(args.activation)
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"activation={args.activation}, {'quick' if args.quick else 'full'} run")
    print("train step = forward + l2 loss + backward + Adam step; us per call, best / median\n")
    header = (f"{'net':<14}{'batch':>6}{'dtype':>9}{'rlnn best':>11}{'median':>9}"
              f"{'reference':>11}{'median':>9}{'speedup':>9}  target")
    print(header)
    print("-" * len(header))
    misses = []
    for sizes in SIZES:
        name = "-".join(map(str, sizes))
        for dtype in DTYPES:
            for batch in BATCHES:
                rng = np.random.default_rng(0)
                x = rng.standard_normal((batch, sizes[0])).astype(dtype)
                y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
                net = MLP(sizes, activation=args.activation, dtype=dtype, seed=0)
                ref = ReferenceMLP(net, args.activation)
                step = make_rlnn_step(net, optim.Adam(net.flat_params, net.flat_grads))
                ours, theirs = measure([lambda: step(x, y), lambda: ref.train_step(x, y)],
                                       args.quick)
                target = TARGETS_US.get((tuple(sizes), batch, np.dtype(dtype).name))
                note = _target_note(ours[0], target, misses,
                                    f"train {name} b{batch} {np.dtype(dtype).name}")
                print(f"{name:<14}{batch:>6}{np.dtype(dtype).name:>9}{ours[0]:>11.1f}"
                      f"{ours[1]:>9.1f}{theirs[0]:>11.1f}{theirs[1]:>9.1f}"
                      f"{theirs[0] / ours[0]:>8.1f}x  {note}")
    print("\npredict on one observation (the acting cost), us per call")
    print(header.replace("batch", "  obs"))
    print("-" * len(header))
    for sizes in SIZES:
        name = "-".join(map(str, sizes))
        for dtype in DTYPES:
            obs = np.random.default_rng(1).standard_normal(sizes[0]).astype(dtype)
            net = MLP(sizes, activation=args.activation, dtype=dtype, seed=0)
            ref = ReferenceMLP(net, args.activation)
            ours, theirs = measure([lambda: net.predict(obs), lambda: ref.predict(obs)],
                                   args.quick)
            target = PREDICT_TARGET_US if sizes == SIZES[0] else None
            note = _target_note(ours[0], target, misses,
                                f"predict {name} {np.dtype(dtype).name}")
            print(f"{name:<14}{1:>6}{np.dtype(dtype).name:>9}{ours[0]:>11.1f}{ours[1]:>9.1f}"
                  f"{theirs[0]:>11.1f}{theirs[1]:>9.1f}{theirs[0] / ours[0]:>8.1f}x  {note}")
    print()
    print("all targets met" if not misses else "targets missed: " + "; ".join(misses))
    floor_table(args)


def floor_table(args):
    """What the train-step targets leave no way around: the step's matmuls, activations and Adam.

    Each primitive is timed alone (the best case: hot caches, no Python around it) on the target's
    shapes: per layer the forward h W, the backward h^T dz and (but for the first layer) dz W^T; the
    hidden activation on each hidden layer's (B, n); one Adam step over all parameters. Their sum is
    a lower bound for any NumPy train step on this machine, whatever the code around them.

    "other" times, the same way, the calls a step makes besides those: the input's copy into the
    network's buffer, the output's copy, the l2 loss and its gradient, the activation derivative
    (one call on the stacked hidden layers, as rlnn's backward makes it) and its product with
    dL/dh per hidden layer. "all" is the sum of every call a step makes, each timed alone; rlnn's
    step over it ("/all") is what the Python around the calls and running them back to back cost.
    """
    print("\nlower bound of a train step from its unavoidable primitives, us (best of repeats)")
    header = (f"{'net':<14}{'batch':>6}{'dtype':>9}{'matmuls':>9}{'activ.':>8}{'Adam':>7}"
              f"{'floor':>8}{'other':>7}{'all':>7}{'rlnn':>8}{'ratio':>7}{'/all':>6}  target")
    print(header)
    print("-" * len(header))
    for (sizes, batch, dtype_name), target in TARGETS_US.items():
        dtype = np.dtype(dtype_name)
        rng = np.random.default_rng(0)
        net = MLP(list(sizes), activation=args.activation, dtype=dtype, seed=0)
        opt = optim.Adam(net.flat_params, net.flat_grads)
        act = activations.get(args.activation)
        matmuls, activation_calls = [], []
        for t, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            h = rng.standard_normal((batch, n_in)).astype(dtype)
            dz = rng.standard_normal((batch, n_out)).astype(dtype)
            W, z, dW, dh = net.weights[t], np.empty_like(dz), np.empty((n_in, n_out), dtype), np.empty_like(h)
            hT, WT = h.T, W.T           # the matmuls as the network calls them: ndarray.dot, views made once
            matmuls += [lambda h=h, W=W, z=z: h.dot(W, out=z),
                        lambda hT=hT, dz=dz, dW=dW: hT.dot(dz, out=dW)]
            if t > 0:
                matmuls.append(lambda dz=dz, WT=WT, dh=dh: dz.dot(WT, out=dh))
            if t < len(sizes) - 2:
                zin = rng.standard_normal((batch, n_out)).astype(dtype)
                out = np.empty_like(zin)      # the activation as the network calls it: bound to its buffer
                activation_calls.append(lambda zin=zin, out=out, f=act.kernel(out): f(zin, out))
        x = rng.standard_normal((batch, sizes[0])).astype(dtype)
        y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
        step = make_rlnn_step(net, optim.Adam(net.flat_params, net.flat_grads))
        other = _other_calls(sizes, batch, dtype, act, x, y, rng)
        fns = [*matmuls, *activation_calls, opt.step, lambda: step(x, y), *other]
        best = [b for b, _ in measure(fns, args.quick)]
        k = len(matmuls) + len(activation_calls)
        mm, ac, adam, ours, rest = sum(best[:len(matmuls)]), sum(best[len(matmuls):k]), best[k], best[k + 1], \
            sum(best[k + 2:])
        floor = mm + ac + adam
        verdict = "below the floor: not reachable here" if floor > target else ""
        print(f"{'-'.join(map(str, sizes)):<14}{batch:>6}{dtype_name:>9}{mm:>9.1f}{ac:>8.1f}{adam:>7.1f}"
              f"{floor:>8.1f}{rest:>7.1f}{floor + rest:>7.1f}{ours:>8.1f}{ours / floor:>7.2f}"
              f"{ours / (floor + rest):>6.2f}  < {target:g} {verdict}")


def _other_calls(sizes, batch, dtype, act, x, y, rng):
    """The calls of a train step outside the floor, as rlnn makes them, on buffers of their shapes."""
    hidden = sizes[1:-1]
    x_T = np.empty((sizes[0], batch), dtype)           # the network's input buffer holds x^T
    out = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    h = np.tanh(rng.standard_normal((len(hidden), hidden[0] + 1, batch))).astype(dtype)
    g_prime = np.empty_like(h)                          # g' of the stacked hidden layers, ones rows included
    dh = [rng.standard_normal((n, batch)).astype(dtype) for n in hidden]
    dz = [np.empty_like(g) for g in dh]                 # rlnn writes dz over g' in place; apart here, so
                                                        # repeated calls do not overflow

    def copy_in(x=x):
        x_T[...] = x.T

    calls = [copy_in, out.copy, lambda: losses.l2(out, y),
             lambda: act.df_from_output(h, out=g_prime)]
    calls += [lambda g_t=g_prime[t][:-1], dh_t=dh[t], dz_t=dz[t]: np.multiply(g_t, dh_t, out=dz_t)
              for t in range(len(hidden))]
    return calls


def _target_note(best, target, misses, label):
    if target is None:
        return ""
    if best <= target:
        return f"< {target:g} ok"
    misses.append(f"{label} {best:.1f} us > {target:g} us")
    return f"< {target:g} MISSED"


if __name__ == "__main__":
    main(ARGS)
