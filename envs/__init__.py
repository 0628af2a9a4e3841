"""Building Gymnasium environments for rlnn, and saving their state for exact resume.

Every training env is a Gymnasium *vector* env in ``AutoresetMode.NEXT_STEP``: after an episode ends,
the following ``step`` call returns the reset observation with reward 0 and both flags False, and the
action passed to it is ignored. That row is not a real transition; the run loop masks it out (see
``agents.loop``). NEXT_STEP is the one mode every Gymnasium vector env and vector observation wrapper
supports, and the fast NumPy ``CartPoleVectorEnv`` supports nothing else, so we use it everywhere.

Layers, innermost first: the vector env (the registered ``vector_entry_point`` where one exists and
there are 4 envs or more, for CartPole our own ``envs.cartpole.CartPoleVectorEnv``, Gymnasium's bit for
bit with a cheaper step; for Pendulum, which Gymnasium has none for, ``envs.pendulum.PendulumVectorEnv``,
its dynamics bit for bit; else our ``envs.sync.SyncVectorEnv``, Gymnasium's ``SyncVectorEnv`` with a
cheaper step), ``EpisodeStatistics`` (Gymnasium's ``RecordEpisodeStatistics`` with a leaner
step; episode return/length in ``info["episode"]``), optionally ``NormalizeObservation`` (running
mean/variance of observations).

Each sub-env's observations are flattened by Gymnasium's ``FlattenObservation`` when they are not a
flat Box (``envs.spaces``): an MLP reads one flat vector.

Modules: ``source`` names a run's env (an id, ``module:EnvId``, an entry point, an object given in a
script) and runs Gymnasium's env checker on envs that are not Gymnasium's own, ``spaces`` flattens
observations of any fixed-size space, ``make`` builds and checks vector envs, ``cartpole`` and ``pendulum`` hold
the CartPole and Pendulum vector envs, ``sync`` the sync vector env, ``wrappers`` ``EpisodeStatistics``, ``normalize``
finds and freezes the observation normalizer, ``state`` saves and restores env state.
"""

from envs.make import (EnvError, EnvMaker, action_kind, check_env_id, check_first_step, check_observation_space,
                       check_spaces, make_eval_env, make_eval_env_from_state, make_vec_env, raw_observation_space)
from envs.source import maker_for, short_name
from envs.spaces import flatten_batch, space_from_dict, space_to_dict
from envs.normalize import freeze_normalizer, normalize_frozen, obs_normalizer, sync_normalizer
from envs.state import env_state, load_env_state
from envs.wrappers import EpisodeStatistics

from envs import make as _make

# make's own list, once; then the other modules' names
__all__ = [*_make.__all__, "maker_for", "short_name", "flatten_batch", "space_to_dict", "space_from_dict",
           "env_state", "load_env_state", "obs_normalizer", "freeze_normalizer", "normalize_frozen", "sync_normalizer",
           "EpisodeStatistics"]
