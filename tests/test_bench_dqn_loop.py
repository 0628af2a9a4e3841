"""bench_dqn_loop's alternating comparison with another checkout: pairs of runs, then medians and ratios."""

import os
import re

import pytest

from experiments import bench_dqn_loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_against_a_checkout_prints_one_row_per_pair_and_the_ratios(capsys):
    # This checkout against itself, two short pairs (learning starts at 1,000 env steps).
    assert bench_dqn_loop.main(["--against", ROOT, "--pairs", "2", "--seeds", "0-1", "--steps", "1200"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\d) \| (\d) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|$", out, re.M)
    assert [(pair, seed) for pair, seed, *_ in rows] == [("0", "0"), ("1", "1")]
    for *_, other, this, ratio in rows:
        sps = float(other.replace(",", "")), float(this.replace(",", ""))
        assert min(sps) > 0 and float(ratio) == pytest.approx(sps[1] / sps[0], abs=0.006)
    assert "ratio of the medians" in out


def test_against_something_that_is_not_a_checkout_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_dqn_loop.main(["--against", str(tmp_path), "--pairs", "1"])
    assert exit_.value.code == 2
    assert f"--against {tmp_path}: not a checkout of rlnn" in capsys.readouterr().err


def test_a_run_that_fails_in_the_other_checkout_stops_with_its_last_error_line(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("")
    (tmp_path / "experiments" / "bench_dqn_loop.py").write_text("raise RuntimeError('no run_loop here')\n")
    with pytest.raises(SystemExit) as exit_:
        bench_dqn_loop.main(["--against", str(tmp_path), "--pairs", "1"])
    assert str(exit_.value) == f"the run in {tmp_path} failed: RuntimeError: no run_loop here"
