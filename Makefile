# Two commands set up and use a fresh machine (only Python 3.11 needed):
#   make compare   the main job: ppo (policy-based) vs dqn (value-based) on CartPole-v1 over 3 seeds, table + plot + TensorBoard
#   make test      the test suite
# Both create .venv and install the project into it on first use (and again when pyproject.toml changes):
# compare only what it needs; test also the dev, ray, suite and box2d extras, so the suite also runs the
# Ray backends, the suite's rliable aggregate and LunarLander.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: compare test bench install clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml $(VENV)/.created
	$(PY) -m pip install --quiet -e '.[dev,ray,suite,box2d]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed-all

compare: $(VENV)/.installed
	$(VENV)/bin/rlnn compare --env CartPole-v1 --algos ppo,dqn --seeds 3 --workers auto

test: $(VENV)/.installed-all
	$(PY) -m pytest

bench: $(VENV)/.installed-all
	$(PY) experiments/bench_nn.py
	$(PY) experiments/bench_dqn_loop.py --seeds 3
	$(PY) experiments/bench_agents.py --algo dqn --seeds 0-9
	$(PY) experiments/bench_agents.py --algo ppo --seeds 0-9
	$(PY) experiments/bench_agents.py --algo pg --seeds 0-9
	$(PY) experiments/bench_agents.py --algo sac --env Pendulum-v1 --seeds 0-9

clean:
	rm -rf $(VENV) runs .pytest_cache
