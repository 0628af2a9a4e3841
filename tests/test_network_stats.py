"""Per-layer statistics and histograms in TensorBoard; the check-gradients command."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import accumulator

from agents.network_stats import NetworkInspector
from rlnn import MLP, losses, optim


class TwoNetAgent:
    """Just enough of an agent to inspect: a ReLU net and a tanh net with one optimizer each."""

    output_kinds = {"relu": "q_values", "tanh": "logits"}

    def __init__(self):
        self.nets = {"relu": MLP([3, 8, 2], activation="relu", seed=0),
                     "tanh": MLP([3, 8, 2], activation="tanh", seed=1)}
        self.opts = {k: optim.Adam(n.flat_params, n.flat_grads, lr=1e-2) for k, n in self.nets.items()}

    def networks(self):
        return self.nets

    def optimizers(self):
        return self.opts

    def train_step(self, x, y):
        for name, net in self.nets.items():
            net.zero_grad()
            _, dy = losses.l2(net.forward(x), y)
            net.backward(dy)
            self.opts[name].step()


def inspect_once(agent, x, y):
    inspector = NetworkInspector(agent)
    agent.train_step(x, y)
    out = {}
    for name, net in agent.networks().items():
        out.update(inspector.layer_stats(name, net))
    return out


def test_dead_fraction_is_one_for_a_relu_layer_forced_negative_and_zero_for_a_positive_one():
    agent = TwoNetAgent()
    relu = agent.nets["relu"]
    x = np.random.default_rng(0).normal(size=(16, 3))
    y = np.zeros((16, 2))
    relu.params[1][:] = -100.0  # every hidden pre-activation negative: all units dead
    stats = inspect_once(agent, x, y)
    assert stats["network/relu/layer1/dead_fraction"] == 1.0
    relu.params[1][:] = 100.0
    stats = inspect_once(agent, x, y)
    assert stats["network/relu/layer1/dead_fraction"] == 0.0
    assert "network/relu/layer2/dead_fraction" not in stats  # the output layer is not a ReLU layer


def test_saturated_fraction_and_update_ratio():
    agent = TwoNetAgent()
    tanh = agent.nets["tanh"]
    x = np.random.default_rng(0).normal(size=(16, 3))
    y = np.zeros((16, 2))
    tanh.params[1][:4] = 50.0  # half of the 8 hidden units pinned at +1
    stats = inspect_once(agent, x, y)
    assert stats["network/tanh/layer1/saturated_fraction"] == pytest.approx(0.5, abs=0.1)
    # Adam's first step moves every parameter by ~lr: the ratio is ‖Δθ‖/‖θ‖ for that step.
    w, b = tanh.params[0], tanh.params[1]
    assert 1e-4 < stats["network/tanh/layer1/update_ratio"] < 1e-1
    assert stats["network/tanh/layer1/weight_norm"] == pytest.approx(np.linalg.norm(w))
    g = np.concatenate([tanh.grads[0].ravel(), tanh.grads[1].ravel()])
    assert stats["network/tanh/layer1/grad_norm"] == pytest.approx(np.linalg.norm(g))
    assert b.shape == (8,)


def test_update_ratio_comes_from_an_optimizer_hook_that_close_removes():
    agent = TwoNetAgent()
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.zeros((16, 2))
    inspector = NetworkInspector(agent)
    opt = agent.opts["relu"]
    assert "step" not in vars(opt)                 # the optimizer's step is not replaced
    before = agent.nets["relu"].flat_params.copy()
    # Before any step nothing has moved: the ratio is 0 (not a norm of uninitialized memory).
    assert inspector.layer_stats("relu", agent.nets["relu"])["network/relu/layer1/update_ratio"] == 0
    agent.train_step(x, y)
    np.testing.assert_array_equal(inspector.before["relu"], before)
    inspector.close()
    agent.train_step(x, y)                         # no hook now: the snapshot stays where it was
    np.testing.assert_array_equal(inspector.before["relu"], before)


def test_histograms_of_weights_grads_and_outputs_are_written(tmp_path):
    from agents.logger import Logger, TensorBoardSink

    agent = TwoNetAgent()
    inspector = NetworkInspector(agent)
    x = np.random.default_rng(0).normal(size=(16, 3))
    agent.train_step(x, np.zeros((16, 2)))
    logger = Logger([TensorBoardSink(str(tmp_path))])
    inspector.log(logger, step=100)
    logger.close()
    acc = accumulator(str(tmp_path))
    histos = set(acc.Tags()["histograms"])
    for net in ("relu", "tanh"):
        for t in (1, 2):
            assert {f"network/{net}/layer{t}/weights", f"network/{net}/layer{t}/biases",
                    f"network/{net}/layer{t}/weight_grads"} <= histos
    assert {"network/relu/q_values/action0", "network/relu/q_values/action1", "network/tanh/action_probs"} <= histos
    probs = acc.Histograms("network/tanh/action_probs")[0].histogram_value
    assert probs.num == 32 and 0.0 <= probs.min and probs.max <= 1.0
    w = acc.Histograms("network/relu/layer1/weights")[0].histogram_value
    assert w.num == 24 and w.min == pytest.approx(agent.nets["relu"].params[0].min())
    scalars = set(acc.Tags()["scalars"])
    assert {"network/relu/layer1/dead_fraction", "network/tanh/layer1/saturated_fraction",
            "network/relu/layer2/update_ratio", "network/tanh/layer1/grad_norm"} <= scalars


@pytest.mark.parametrize("algo,env,activation", [("pg", "CartPole-v1", "tanh"), ("dqn", "CartPole-v1", "relu"),
                                                 ("ppo", "CartPole-v1", "tanh"), ("ppo", "Pendulum-v1", "tanh")])
def test_check_gradients_passes_and_flips_when_a_gradient_is_wrong(algo, env, activation, capsys, monkeypatch):
    from experiments.cli import main
    from rlnn import activations

    argv = ["check-gradients", "--algo", algo, "--env", env, "--set", f"agent.activation={activation}",
            "--batch-size", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "layer1" in out and "layer3" in out and "OK: worst error" in out
    assert ("clipped_surrogate" in out) == (algo == "ppo") and ("log_std" in out) == (env == "Pendulum-v1")

    cls = type(activations.get(activation))
    right = cls.df_from_output

    def off_by_ten_percent(self, y, out=None):
        result = right(self, y, out=out)
        result *= 1.1  # in place: backprop reads ``out``
        return result

    monkeypatch.setattr(cls, "df_from_output", off_by_ten_percent)
    assert main(argv) == 1
    assert "FAILED: worst error" in capsys.readouterr().out


def test_check_gradients_checks_the_log_std_of_a_gaussian_policy(capsys, monkeypatch):
    from agents.heads import DiagonalGaussian
    from experiments.cli import main

    argv = ["check-gradients", "--algo", "pg", "--env", "Pendulum-v1", "--batch-size", "16"]
    right = DiagonalGaussian.log_prob_backward

    def log_std_gradient_off_by_ten_percent(self, dlogp):
        dmean, dlog_std = right(self, dlogp)
        return dmean, dlog_std * 1.1

    monkeypatch.setattr(DiagonalGaussian, "log_prob_backward", log_std_gradient_off_by_ten_percent)
    assert main(argv) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if "log_std" in line]
    assert len(failed) == 1 and float(failed[0].split()[-2]) > 1e-3


def test_a_gaussian_policys_means_are_drawn_and_its_std_logged(tmp_path):
    from agents.loop import RunConfig, train
    from agents.ppo import PPOConfig

    run = RunConfig(env_id="Pendulum-v1", total_steps=512, num_envs=2, eval_episodes=0, network_log_every=256,
                    log_every=128, logdir=str(tmp_path))
    result = train("ppo", run, PPOConfig(rollout_steps=64, hidden_sizes=[8], value_hidden_sizes=[8]), console=False)
    acc = accumulator(result.run_dir)
    assert "network/policy/means/dim0" in acc.Tags()["histograms"]
    assert "network/value/outputs" in acc.Tags()["histograms"]
    std = [e.value for e in acc.Scalars("charts/action_std")]
    assert std and all(0.5 < s < 2.0 for s in std)       # exp(log_std), started at exp(0) = 1
