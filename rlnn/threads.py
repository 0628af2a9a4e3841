"""One BLAS thread for rlnn's small matrices, set when ``rlnn`` is imported.

A 64-wide layer's matmul is a few microseconds of work: more BLAS threads only add synchronisation, and
on a machine whose other cores are busy (another run, a browser) OpenBLAS's default of one thread per
core makes its threads wait for each other and for the busy cores, which made a training script 2-5x
slower than the same run with one thread. ``threadpoolctl`` sets the limit at run time, whether NumPy
was imported before rlnn or not.

Overridable: a thread count the user set in the environment (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) is left alone, and ``threadpoolctl.threadpool_limits(n,
user_api="blas")`` after importing rlnn sets another.
"""

import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(threads: int = 1) -> bool:
    """Limit BLAS to ``threads`` threads unless the user chose a count; returns whether it did."""
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return False
    import numpy  # noqa: F401  (threadpoolctl limits the libraries loaded so far: NumPy's BLAS first)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")
    return True
