"""Policy heads by action space: what turns an MLP's outputs into a distribution over actions.

A policy is a classifier over actions when they are discrete, and a density over them when they are
continuous. A head owns that distribution's math, apart from any network: sampling, the greedy action,
log-probability, entropy, and their gradients with respect to the network outputs (the chain rule then
continues through ``MLP.backward``). Every gradient here is checked against finite differences in
float64 (tests/test_heads.py).

Heads:

* categorical (softmax) over Discrete(k): the MLP outputs k logits;
* diagonal Gaussian over a Box (PG, PPO): the MLP outputs the mean, the log standard deviation is a
  learned state-independent vector;
* tanh-squashed Gaussian over a Box (SAC): the MLP outputs mean and log-std, a = tanh(u) scaled into
  the Box, with the log-determinant correction in the log-probability.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------- categorical and diagonal Gaussian


# ------------------------------------------------------------------------ tanh-squashed Gaussian (SAC)
