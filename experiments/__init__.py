"""Entry points: the ``rlnn`` command, comparisons, sweeps, reports and benchmarks.

Importing this package pins BLAS to one thread (unless the user set a count): the networks are tiny,
and extra BLAS threads only spin and steal the core another run could use (measured in
``experiments/bench_nn.py --threads``). It must happen before NumPy is first imported, which is why it
lives here: every entry point imports ``experiments`` first. Worker processes get ``THREAD_ENV``.
"""

import os

THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

for _name, _value in THREAD_ENV.items():
    os.environ.setdefault(_name, _value)
