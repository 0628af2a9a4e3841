"""Typed configs: the documented precedence, defaults < preset < --config < flags < --set."""

from __future__ import annotations

import dataclasses

import pytest

from agents import config
from agents.dqn import DQNConfig


def write(tmp_path, text: str) -> str:
    path = tmp_path / "my.toml"
    path.write_text(text)
    return str(path)


def test_precedence_defaults_preset_file_flags_set(tmp_path):
    preset = config.preset_for("dqn", "CartPole-v1")[1]
    file = write(tmp_path, 'algo = "dqn"\n[run]\ntotal_steps = 1234\neval_every = 100\n[agent]\nlr = 0.5\n')
    cfg = config.build(None, None, file, ["agent.lr=0.25"], {"total_steps": 999})
    assert cfg.algo == "dqn"                                          # taken from the file
    assert cfg.preset == "cartpole_dqn"                               # the preset still applies under a file
    assert cfg.agent.gamma == preset["agent"]["gamma"] != DQNConfig().gamma   # preset over defaults
    assert cfg.run.eval_every == 100                                  # file over preset
    assert cfg.run.total_steps == 999                                 # flag over file
    assert cfg.agent.lr == 0.25                                       # --set over file
    assert cfg.agent.tau == DQNConfig().tau == preset["agent"]["tau"]
    assert config.build(None, None, file, ["run.total_steps=7"], {"total_steps": 999}).run.total_steps == 7


def test_the_preset_follows_the_env_of_the_file(tmp_path):
    file = write(tmp_path, 'algo = "pg"\n[run]\nenv_id = "Acrobot-v1"\n')
    cfg = config.build(None, None, file)
    assert cfg.run.env_id == "Acrobot-v1" and cfg.preset == "acrobot_pg"   # not the CartPole preset
    assert config.build("dqn", "Pendulum-v1").agent == DQNConfig()          # no preset: the defaults


def test_file_algo_must_match_an_explicit_algo(tmp_path):
    file = write(tmp_path, 'algo = "dqn"\n')
    with pytest.raises(config.ConfigError, match="algo = 'dqn'"):
        config.build("pg", None, file)


def test_set_takes_strings_or_a_dict_and_algo_prefixes_apply_to_their_algo_only():
    a = config.build("dqn", sets=["agent.hidden_sizes=[8, 8]", "pg.lr=9.0", "dqn.gamma=0.5"])
    b = config.build("dqn", sets={"agent.hidden_sizes": [8, 8], "pg.lr": 9.0, "dqn.gamma": 0.5})
    assert a == b and a.agent.hidden_sizes == [8, 8] and a.agent.gamma == 0.5 and a.agent.lr != 9.0


@pytest.mark.parametrize("item,message", [
    ("agent.nope=1", "unknown key agent.nope"),
    ("run.num_envs=lots", "run.num_envs: 'lots' is not an int"),
    ("lr", "expected key=value"),
])
def test_bad_sets_are_one_line_config_errors(item, message):
    with pytest.raises(config.ConfigError, match=message):
        config.build("dqn", sets=[item])


def test_train_config_round_trips_through_its_json_form():
    cfg = config.build("pg", sets=["agent.hidden_sizes=[16]", "run.env_kwargs={max_episode_steps = 50}"])
    back = config.TrainConfig.from_dict(cfg.to_dict())
    assert dataclasses.replace(back, preset=cfg.preset) == cfg
    with pytest.raises(config.ConfigError, match="no algo"):
        config.TrainConfig.from_dict({"run": {}})


@pytest.mark.parametrize("content", [None, b"\x00\xff\xfe binary"])
def test_config_that_is_a_directory_or_binary_is_one_line(tmp_path, content):
    path = tmp_path / "cfg"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(config.ConfigError, match="directory|not valid TOML"):
        config.build("pg", config_file=str(path))
