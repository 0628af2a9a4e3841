"""``rlnn eval RUN_DIR``: greedy episodes of a run's latest checkpoint on fresh envs, optionally shown."""

from __future__ import annotations

import os

import numpy as np

import agents
import envs


class RenderMissing(envs.EnvError):
    pass


def evaluate_run(run_dir: str, episodes: int = 20, render: bool = False, gif: str | None = None,
                 seed: int = 12345, checkpoint: str = "latest") -> int:
    if episodes < 1:
        raise envs.EnvError(f"--episodes {episodes}: must be at least 1")
    if gif and not os.path.isdir(os.path.dirname(os.path.abspath(gif))):
        raise envs.EnvError(f"--gif {gif}: no directory {os.path.dirname(os.path.abspath(gif))} to write it in")
    run = agents.load(run_dir, checkpoint=None if os.path.isfile(run_dir) and checkpoint == "latest" else checkpoint)
    returns = run.evaluate(episodes, seed=seed)
    which = "" if checkpoint == "latest" else f", checkpoint {checkpoint}"
    print(f"{run_dir} ({run.config.algo}, step {run.step:,}{which}): greedy return over {len(returns)} episodes "
          f"{returns.mean():.1f} ± {returns.std():.1f} (min {returns.min():.0f}, max {returns.max():.0f})")
    if render or gif:
        show(run, seed, render, gif)
    return 0


def show(run: agents.Run, seed: int, render: bool, gif: str | None) -> None:
    """One greedy episode in a window (``render``) and/or as an animated GIF."""
    try:
        import pygame  # noqa: F401
    except ImportError:
        raise RenderMissing("rendering needs pygame: pip install 'rlnn[render]'") from None
    env = run.make_env(1, vectorization_mode="sync", render_mode="human" if render else "rgb_array")
    obs, _ = env.reset(seed=seed)
    frames, total = [], 0.0
    while True:
        if gif:
            frame = env.render()
            frames.append(frame[0] if isinstance(frame, (list, tuple)) else frame)
        obs, reward, term, trunc, _ = env.step(run.agent.act(obs, greedy=True))
        total += float(reward[0])
        if term[0] or trunc[0]:
            break
    env.close()
    if gif:
        from PIL import Image

        images = [Image.fromarray(np.asarray(f)) for f in frames if f is not None]
        images[0].save(gif, save_all=True, append_images=images[1:], duration=20, loop=0)
        print(f"saved {len(images)} frames to {gif} (episode return {total:.0f})")
