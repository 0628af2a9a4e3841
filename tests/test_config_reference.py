"""The config reference: every key of every algorithm has a type, a default and a meaning, from one source
(the dataclass fields and their comments), printed by ``rlnn config`` and kept in docs/config.md."""

from __future__ import annotations

import dataclasses
import os

import pytest
from conftest import ROOT

from agents import ALGOS, get_algo
from agents.config import RunConfig, describe
from experiments import config_cmd
from experiments.cli import main


@pytest.mark.parametrize("cls", [RunConfig] + [get_algo(name)[0] for name in ALGOS], ids=lambda c: c.__name__)
def test_every_key_says_what_it_is(cls):
    rows = describe(cls)
    assert [key for key, *_ in rows] == [f.name for f in dataclasses.fields(cls)]
    assert [key for key, _, _, doc in rows if len(doc) < 8] == []        # a meaning, not a blank


def test_rlnn_config_lists_every_key_of_the_algorithm_and_the_run(capsys):
    assert main(["config", "DQN"]) == 0
    out = capsys.readouterr().out
    config_cls, _ = get_algo("dqn")
    for f in dataclasses.fields(config_cls) + dataclasses.fields(RunConfig):
        assert f"  {f.name} " in out, f.name
    assert "[agent] of pg" not in out


def test_docs_config_md_is_what_rlnn_config_prints():
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        written = f.read()
    assert written == config_cmd.markdown(list(ALGOS)), "docs/config.md is stale: rlnn config --markdown > docs/config.md"
