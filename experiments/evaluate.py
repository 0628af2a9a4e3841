"""``rlnn eval RUN_DIR``: greedy episodes of a run's latest checkpoint on fresh envs."""

from __future__ import annotations

import json
import os

import numpy as np

import envs
from agents import get_algo
from agents import checkpoint as ckpt
from agents.base import EnvInfo
from agents.loop import evaluate
from experiments import config


class RenderMissing(envs.EnvError):
    pass


def load_agent(run_dir: str):
    """(algo, run config, agent, env state) from a run directory's config.json and latest checkpoint."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(cfg_path):
        raise ckpt.CheckpointError(f"{run_dir}: not a run directory (no config.json)")
    with open(cfg_path) as f:
        saved = json.load(f)
    algo = saved["algo"]
    run_cfg, agent_cfg = config.from_saved(algo, saved)
    _, agent_cls = get_algo(algo)
    probe = envs.make_vec_env(run_cfg.env_id, 1, seed=0)
    info = EnvInfo.from_env(probe)
    probe.close()
    # Built as it was trained (buffers are sized by the run's num_envs); acting takes any batch size.
    agent = agent_cls(agent_cfg, EnvInfo(info.obs_dim, info.num_actions, run_cfg.num_envs), np.random.default_rng(0))
    path = ckpt.latest_checkpoint(run_dir)
    meta, state = ckpt.load(path)
    try:
        agent.load_state_dict(state["agent"])
    except (KeyError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path}: does not match the run's agent ({e})") from None
    return algo, run_cfg, agent, ckpt.flatten(state.get("env", {})), meta


def _frozen_env(run_cfg, n: int, env_state: dict, **kwargs):
    env = envs.make_vec_env(run_cfg.env_id, n, seed=0, normalize_obs=run_cfg.normalize_obs, **kwargs)
    norm = envs.obs_normalizer(env)
    if norm is not None and "norm/mean" in env_state:
        norm.obs_rms.mean, norm.obs_rms.var = env_state["norm/mean"], env_state["norm/var"]
        norm.update_running_mean = False
    return env


def evaluate_run(run_dir: str, episodes: int = 20, render: bool = False, gif: str | None = None,
                 seed: int = 12345) -> int:
    if episodes < 1:
        raise envs.EnvError(f"--episodes {episodes}: must be at least 1")
    algo, run_cfg, agent, env_state, meta = load_agent(run_dir)
    env = _frozen_env(run_cfg, episodes, env_state)
    returns = evaluate(agent, env, seed=seed)
    env.close()
    print(f"{run_dir} ({algo}, step {meta['step']:,}): greedy return over {len(returns)} episodes "
          f"{returns.mean():.1f} ± {returns.std():.1f} (min {returns.min():.0f}, max {returns.max():.0f})")
    if render or gif:
        _show(run_cfg, agent, env_state, seed, render, gif)
    return 0


def _show(run_cfg, agent, env_state, seed: int, render: bool, gif: str | None) -> None:
    try:
        import pygame  # noqa: F401
    except ImportError:
        raise RenderMissing("rendering needs pygame: pip install 'rlnn[render]'") from None
    mode = "human" if render else "rgb_array"
    env = _frozen_env(run_cfg, 1, env_state, vectorization_mode="sync", render_mode=mode)
    obs, _ = env.reset(seed=seed)
    frames, total = [], 0.0
    while True:
        if gif:
            frame = env.render()
            frames.append(frame[0] if isinstance(frame, (list, tuple)) else frame)
        obs, reward, term, trunc, _ = env.step(agent.act(obs, greedy=True))
        total += float(reward[0])
        if term[0] or trunc[0]:
            break
    env.close()
    if gif:
        from PIL import Image

        images = [Image.fromarray(np.asarray(f)) for f in frames if f is not None]
        images[0].save(gif, save_all=True, append_images=images[1:], duration=20, loop=0)
        print(f"saved {len(images)} frames to {gif} (episode return {total:.0f})")
