"""rlnn.save / rlnn.load: round trips, exact resume, and clear errors for bad files."""
import json
import os

import numpy as np
import pytest

import rlnn
from rlnn import MLP, CheckpointError, losses, optim


def _train(net, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((8, net.sizes[0]))
        y = rng.standard_normal((8, net.sizes[-1]))
        net.zero_grad()
        _, dy = losses.huber(net.forward(x), y)
        net.backward(dy)
        opt.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_resumes_bit_for_bit(tmp_path, dtype):
    net = MLP([3, 8, 2], activation="relu", output_activation="tanh", dtype=dtype, seed=0)
    opt = optim.Adam(net.flat_params, net.flat_grads, lr=1e-2)
    _train(net, opt, 5, seed=1)
    path = tmp_path / "ckpt.npz"
    rlnn.save(path, net, opt)
    _train(net, opt, 5, seed=2)                      # the uninterrupted run

    loaded, opt_state = rlnn.load(path)
    assert loaded.sizes == [3, 8, 2] and loaded.activation == "relu"
    assert loaded.output_activation == "tanh" and loaded.dtype == dtype
    resumed_opt = optim.Adam(loaded.flat_params, loaded.flat_grads, lr=0.5)
    resumed_opt.load_state_dict(opt_state)
    assert resumed_opt.lr == 1e-2 and resumed_opt.step_count == 5
    _train(loaded, resumed_opt, 5, seed=2)
    np.testing.assert_array_equal(loaded.flat_params, net.flat_params)


def test_net_only_and_exact_path(tmp_path):
    net = MLP([2, 3, 1], seed=4)
    path = tmp_path / "weights.bin"                   # no .npz is appended
    rlnn.save(str(path), net)
    assert sorted(os.listdir(tmp_path)) == ["weights.bin"]   # no temp file left behind
    loaded, opt_state = rlnn.load(path)
    assert opt_state is None
    np.testing.assert_array_equal(loaded.flat_params, net.flat_params)
    rlnn.save(path, MLP([2, 3, 1], seed=5))           # overwrite in place
    assert not np.array_equal(rlnn.load(path)[0].flat_params, net.flat_params)


def test_config_is_json_not_pickle(tmp_path):
    path = tmp_path / "c.npz"
    rlnn.save(path, MLP([2, 3, 1]), optim.SGD(*_flat(MLP([2, 3, 1])), lr=0.1))
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(data["config"].tobytes().decode())
        assert data["config"].dtype == np.uint8
    assert config["net"]["sizes"] == [2, 3, 1]
    assert config["optimizer"]["type"] == "SGD"


def _flat(net):
    return net.flat_params, net.flat_grads


def test_save_rejects_an_optimizer_of_another_network(tmp_path):
    net = MLP([2, 3, 1])
    other = MLP([2, 5, 1])
    with pytest.raises(ValueError, match="flat_params"):
        rlnn.save(tmp_path / "x.npz", net, optim.Adam(*_flat(other)))
    assert os.listdir(tmp_path) == []


def _expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        rlnn.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.npz", "no such file")


def test_truncated_file(tmp_path):
    path = tmp_path / "t.npz"
    rlnn.save(path, MLP([4, 32, 2]), optim.Adam(*_flat(MLP([4, 32, 2]))))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated or corrupt")
    path.write_bytes(b"")
    _expect_error(path, "truncated or corrupt")


def test_corrupted_bytes_and_garbage(tmp_path):
    path = tmp_path / "c.npz"
    net = MLP([4, 32, 2])
    rlnn.save(path, net)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2                            # inside flat_params' data
    data[middle: middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    _expect_error(path, "truncated or corrupt")
    path.write_bytes(b"this is not a zip file at all")
    _expect_error(path, "truncated or corrupt")


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _config(sizes=(2, 3, 1), optimizer=None):
    text = json.dumps({"format": "rlnn-checkpoint", "version": 1, "optimizer": optimizer,
                       "net": {"sizes": list(sizes), "activation": "tanh",
                               "output_activation": "identity", "dtype": "float64"}})
    return np.frombuffer(text.encode(), np.uint8)


def test_wrong_parameter_shape(tmp_path):
    path = tmp_path / "w.npz"
    _write_npz(path, config=_config(), flat_params=np.zeros(10))    # [2,3,1] has 13
    _expect_error(path, "shape (10,)", "expected (13,)")


def test_wrong_optimizer_state_shape(tmp_path):
    path = tmp_path / "o.npz"
    opt = {"type": "Adam", "step": 1, "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8,
           "weight_decay": 0.0, "amsgrad": False}
    arrays = {"optimizer/exp_avg": np.zeros(5), "optimizer/exp_avg_sq": np.zeros(13),
              "optimizer/max_exp_avg_sq": np.zeros(0)}
    _write_npz(path, config=_config(optimizer=opt), flat_params=np.zeros(13), **arrays)
    _expect_error(path, "exp_avg", "(5,)")


def test_not_an_rlnn_checkpoint(tmp_path):
    path = tmp_path / "n.npz"
    _write_npz(path, flat_params=np.zeros(13))
    _expect_error(path, "config")
    _write_npz(path, config=np.frombuffer(b"{not json", np.uint8), flat_params=np.zeros(13))
    _expect_error(path, "JSON")
    _write_npz(path, config=_config(sizes=(2, 0, 1)), flat_params=np.zeros(13))
    _expect_error(path, "sizes")


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "p.npz"
    _write_npz(path, config=_config(), flat_params=np.array([{"evil": 1}], dtype=object))
    _expect_error(path, "pickle")
