"""The one training loop: act -> env.step -> observe -> learn -> log -> evaluate -> checkpoint.

The loop owns the envs, the clock, the logger, the checkpoints and the env-step counter; the agent only
acts and learns (``agents.base.Agent``). A session runs in four parts: setup (``agents.registry.check_run``,
then envs, agent, seeds) -> resume (from the run directory's latest checkpoint, if asked; the checkpoint
becomes the end of the run's history, ``RunDir.branch``) -> steps -> finish (final evaluation, checkpoint,
result.json). A session that fails closes every sink as far as it can and raises the error that stopped it
(a full disk: naming the file and the checkpoint that stays).

Every random number comes from one ``np.random.SeedSequence(seed)``, spawned into the agent's generator and
the seeds of the training and evaluation envs, so one seed fixes a whole run. A checkpoint holds the
complete state (agent, envs where ``envs.env_state`` can save them, ``LoopState``), so stopping at step N
and resuming gives bit for bit the run that never stopped; an env whose state cannot be saved is reset
(its episodes in progress restart), and the session says so.

Step counting: ``step`` counts real env transitions. Under NEXT_STEP autoreset the step after an
episode ends only resets that sub-env; it is masked out (``valid``) and not counted. Within one vector
step the transitions are numbered in env order, and a finished episode is logged at the number of its
last transition, so every episode has its own point.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

import envs
from agents.base import EnvInfo
from agents.config import RunConfig, TrainConfig, resume_changes
from agents.console import console_stream
from agents.evaluate import evaluate
from agents.logger import (ConsoleSink, CSVSink, Logger, TensorBoardSink, hparams_of, markdown_table,
                           tensorboard_command)
from agents.registry import check_run, get_algo
from agents.loop_state import Checkpoint, LoopState, RunResult, seeds_for
from agents.rundir import EvalRecord, RunDir
from agents.signals import StopFlag

__all__ = ["RunConfig", "EvalRecord", "RunResult", "LoopState", "TrainingDiverged", "train",
           "evaluate", "seeds_for"]


class TrainingDiverged(RuntimeError):
    """A non-finite loss or parameter: the run stops, the last good checkpoint stays."""


class Interrupted(Exception):
    pass


# valid / prev_done of a one-env step (_Session._env_step_one): shared, so read-only.
_TRUE, _FALSE = np.ones(1, bool), np.zeros(1, bool)
_TRUE.flags.writeable = _FALSE.flags.writeable = False


def train(
    algo: str,
    run_cfg: RunConfig,
    agent_cfg: Any = None,
    run_dir: str | None = None,
    resume: bool = False,
    console: bool = True,
    stream=None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: str | None = None,
    maker: envs.EnvMaker | None = None,
) -> RunResult:
    """Train ``algo`` as ``run_cfg`` says; log and checkpoint into ``run_dir`` (a new directory under
    ``run_cfg.logdir`` if None). The process holds the run directory's lock while it writes there.

    With ``resume=True`` the latest checkpoint of ``run_dir`` (or ``checkpoint``, e.g. "step_50000") is
    loaded and training continues until ``run_cfg.total_steps``; configs that differ from the run's
    config.json may change only ``agents.config.RESUME_CHANGEABLE`` keys, and the change is recorded.
    ``callback(info)`` is called after every vector step (and after the final evaluation) with a dict:
    ``step`` (env steps so far), ``metrics`` (the agent's losses of this step, {} when it did not learn),
    ``eval`` (an EvalRecord when an evaluation ran at this step, else None), ``agent``, ``env`` and
    ``obs``. Returning False stops the run there (status "stopped"; the final evaluation and checkpoint
    are made as at the end of a budget); any other return value (None included) goes on.
    ``maker``: what makes the envs when the env was given as an object (``envs.maker_for``);
    ``run_cfg.env_id`` is then only its name.
    Returns a RunResult; raises TrainingDiverged on a non-finite quantity.
    """
    config_cls, _ = get_algo(algo)
    cfg = TrainConfig(algo, run_cfg, config_cls() if agent_cfg is None else agent_cfg)
    session = _Session(cfg, None if run_dir is None else RunDir(run_dir), console,
                       console_stream(stream or sys.stdout), callback, maker)
    return session.run(resume, checkpoint)


class _Session:
    """One training session of one run: setup -> resume -> steps -> finish."""

    def __init__(self, cfg: TrainConfig, run_dir: RunDir | None, console: bool, stream, callback,
                 maker: envs.EnvMaker | None = None):
        self.cfg, self.run_dir, self.console, self.stream, self.callback = cfg, run_dir, console, stream, callback
        self.maker = maker
        self.result = RunResult(run_dir="", step=0, episodes=0, status="done")
        self.elapsed_step = -1
        self.last_metrics: dict[str, float] = {}
        self.logger: Logger | None = None
        self.notes: list[str] = []         # what the session found and did before it trains (resume, branch)
        self._setup()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        run, (_, agent_cls) = self.cfg.run, get_algo(self.cfg.algo)
        check_run(self.cfg, agent_cls, self.maker)   # env, packages, env_kwargs, spaces, memory: before anything is built
        agent_rng, self.env_seed, self.eval_seed = seeds_for(run.seed)
        self.env = envs.make_vec_env(run.env_id, run.num_envs, seed=self.env_seed, normalize_obs=run.normalize_obs,
                                     maker=self.maker, **run.env_kwargs)
        try:
            self.eval_env = (envs.make_eval_env(run.env_id, run.eval_episodes, self.env, maker=self.maker,
                                                **run.env_kwargs) if run.eval_episodes > 0 else None)
        except BaseException:
            self.env.close()
            raise
        self.env_info = EnvInfo.from_env(self.env)
        self.agent = agent_cls(self.cfg.agent, self.env_info, agent_rng)
        obs, _ = self.env.reset(seed=self.env_seed)
        self.state = LoopState.start(run, obs)

    def _resume(self, checkpoint: str | None) -> dict[str, list]:
        """Load the checkpoint into the agent, the envs and the loop; returns the config changes."""
        saved = TrainConfig.from_dict(self.run_dir.read_config(), self.run_dir.file(RunDir.CONFIG))
        changes = resume_changes(saved, self.cfg)
        path = self.run_dir.latest_checkpoint() if checkpoint is None else self.run_dir.checkpoint_named(checkpoint)
        ckpt = Checkpoint(path, *self.run_dir.load_checkpoint(path))
        ckpt.restore_agent(self.agent, self.cfg.algo)
        state = ckpt.loop_state()
        at = f"resumed at step {state.step:,} from {os.path.basename(path)}"
        if envs.load_env_state(self.env, ckpt.env_state):
            self.notes.append(f"{at}: bit for bit as a run that never stopped (the envs' state is restored)")
        else:
            self.notes.append(f"{at}, not bit for bit: the state of {self.cfg.run.env_id} cannot be saved (only "
                              "envs whose whole state rlnn can save, such as Gymnasium's classic-control ones, "
                              "resume exactly), so the envs were reset and their episodes in progress restart")
            state.obs, _ = self.env.reset(seed=self.env_seed + state.step)
            state.prev_done[:] = False
        self.state = state
        if state.step < self.cfg.run.total_steps:       # a session follows: its history ends at this checkpoint
            self.notes += self.run_dir.branch(state.step)
            if not os.path.isfile(self.run_dir.best_checkpoint_path):   # the best was later: this timeline's anew
                state.best_eval = None
        return changes

    def _record_changes(self, changes: dict[str, list]) -> None:
        """A resumed run's config changes: into config.json's history and the TEXT tab, at this step."""
        if not changes:
            return
        saved = self.run_dir.read_config()
        history = saved.get("history", []) + [{"step": self.state.step, "time": time.time(), "changes": changes}]
        self.run_dir.write_config(dict(self.cfg.to_dict(), history=history))
        lines = "\n".join(f"| {k} | {old} | {new} |" for k, (old, new) in changes.items())
        self.logger.text("config_changes", f"resumed at step {self.state.step:,}\n\n| key | was | now |\n"
                                           f"|---|---|---|\n{lines}", self.state.step)

    def _open_logger(self, resumed: bool) -> None:
        sinks: list = [TensorBoardSink(self.run_dir.path, resume_step=self.state.step if resumed else None),
                       CSVSink(self.run_dir.progress_path)]
        if self.console:
            sinks.append(ConsoleSink(self.cfg.run.total_steps, stream=self.stream, start_step=self.state.step))
        self.logger = Logger(sinks)
        if not resumed:
            hp = hparams_of(self.cfg.to_dict())
            self.logger.hparams(hp, start_time=time.time())
            self.logger.text("hyperparameters", markdown_table(hp), 0)
        self.inspector = None
        if self.cfg.run.network_log_every > 0:
            from agents.network_stats import NetworkInspector

            self.inspector = NetworkInspector(self.agent)

    # -------------------------------------------------------------------- run
    def run(self, resume: bool, checkpoint: str | None = None) -> RunResult:
        changes = self._open(resume, checkpoint)
        if resume and self.state.step >= self.cfg.run.total_steps:
            return self._nothing_to_do()
        # Notes matter without a console too (a compare worker's log, a quiet script): stderr then.
        notes_to = self.stream if self.console else console_stream(sys.stderr)
        for note in self.notes:
            print(f"note: {note}", file=notes_to, flush=True)
        # Signals stay caught to the end: a second SIGTERM (a dying parent may send more than one) must not
        # kill the process while it writes its last checkpoint. A second Ctrl-C still stops it at once.
        with StopFlag() as stop:
            try:
                self._open_logger(resume)
                self._record_changes(changes)
                if self.console:
                    watch = tensorboard_command(os.path.dirname(os.path.abspath(self.run_dir.path)))
                    print(f"run: {self.run_dir}\nwatch: {watch}", file=self.stream, flush=True)
                self.t0, self.session_start_step = time.perf_counter(), self.state.step
                try:
                    self._steps(stop)
                    self._finish()
                except (Interrupted, KeyboardInterrupt):
                    self._interrupted()
                self.logger.close()
                return self._write_result()
            except BaseException as e:
                if self.logger is not None:
                    self.logger.abort("failure")
                if isinstance(e, OSError) and e.errno is not None:   # a full disk: say what stays
                    raise OSError(e.errno, f"{e.strerror}; stopped, {self._kept()}", e.filename) from None
                raise
            finally:
                self._close_envs()
                self.run_dir.unlock()
                if self.console:
                    if self.result.status in ("target_reached", "stopped"):
                        print(f"stopped early: {self.result.stop_reason}", file=self.stream)
                    print(f"events and checkpoints in {self.run_dir}", file=self.stream, flush=True)

    def _open(self, resume: bool, checkpoint: str | None) -> dict[str, list]:
        """Take the run directory (locked) and, when resuming, load its checkpoint; returns config changes."""
        try:
            if resume:
                self.run_dir.lock()
                return self._resume(checkpoint)
            if self.run_dir is None:    # made only now, so a config or env error leaves no empty directory
                self.run_dir = RunDir.create_new(self.cfg.run.logdir, self.cfg.run.env_id, self.cfg.algo,
                                                 self.cfg.run.seed)
            self.notes += self.run_dir.claim_new()
            self.run_dir.write_config(self.cfg.to_dict())
            return {}
        except BaseException:
            if self.run_dir is not None:
                self.run_dir.unlock()
            self._close_envs()
            raise
        finally:
            self.result.run_dir = self.run_dir.path if self.run_dir is not None else ""

    def _nothing_to_do(self) -> RunResult:
        """Resuming a run that already reached its total: nothing is trained, logged or rewritten."""
        self._close_envs()
        self.run_dir.unlock()
        s, saved = self.state, self.run_dir.read_result() or {}
        print(f"{self.run_dir} is already at step {s.step:,} (total_steps {self.cfg.run.total_steps:,}): "
              "nothing to do", file=self.stream)
        return RunResult(run_dir=self.run_dir.path, step=s.step, episodes=s.episodes,
                         status=saved.get("status", "done"), evals=self.run_dir.evals())

    def _steps(self, stop: StopFlag) -> None:
        """Vector steps until total_steps (or an evaluation reaches stop_at_eval_return).

        Per step only what every step needs runs here: the env step, one comparison with the next
        step at which ``_periodic`` has something to do (logging, network statistics, evaluation,
        checkpoint), the callback if one was given, the console tick if there is a console.
        """
        s, total, target = self.state, self.cfg.run.total_steps, self.cfg.run.stop_at_eval_return
        env_step = self._env_step_one if self.env.num_envs == 1 else self._env_step
        tick = self.logger.tick if self.logger.ticks else None
        callback = self.callback
        next_event = self._next_event()
        while s.step < total:
            if stop.signum is not None:
                raise Interrupted
            metrics = env_step()
            record = None
            if s.step >= next_event:
                record = self._periodic()
                next_event = self._next_event()
            if callback is not None and self._call_back(metrics, record) is False:
                self.result.status = "stopped"
                self.result.stop_reason = f"the callback returned False at step {s.step:,}"
                return
            if tick is not None:
                tick(s.step)
            if record is not None and target is not None and record.mean >= target:
                self.result.status = "target_reached"
                self.result.stop_reason = (f"greedy eval {record.mean:.1f} >= run.stop_at_eval_return {target:g} "
                                           f"at step {s.step:,}")
                return
        self.result.stop_reason = f"reached run.total_steps {total:,}"

    def _env_step(self) -> dict[str, float]:
        """One vector step: act, step the envs, let the agent observe and learn; returns its metrics."""
        s = self.state
        actions = self.agent.act(s.obs, s.step)
        next_obs, rewards, terminated, truncated, info = self.env.step(actions)
        valid = ~s.prev_done
        self.agent.observe(s.obs, actions, rewards, next_obs, terminated, truncated, valid)
        prev_step = s.step
        s.step += int(np.count_nonzero(valid))
        s.prev_done = terminated | truncated
        s.obs = next_obs
        if "_episode" in info:
            self._log_episodes(info, prev_step + np.cumsum(valid))
        metrics = self.agent.learn(s.step)
        if metrics:
            self.last_metrics = metrics
        return metrics

    def _env_step_one(self) -> dict[str, float]:
        """``_env_step`` for one env (the classic DQN loop): the same calls, counts and logs, with
        Python bools where the general step does length-1 array operations. ``valid`` and
        ``prev_done`` are shared read-only arrays (``_TRUE``, ``_FALSE``)."""
        s = self.state
        actions = self.agent.act(s.obs, s.step)
        next_obs, rewards, terminated, truncated, info = self.env.step(actions)
        reset_row = s.prev_done[0]       # the env ended last step: this row only reset it (NEXT_STEP)
        self.agent.observe(s.obs, actions, rewards, next_obs, terminated, truncated,
                           _FALSE if reset_row else _TRUE)
        if not reset_row:
            s.step += 1
        s.prev_done = _TRUE if terminated[0] or truncated[0] else _FALSE
        s.obs = next_obs
        if "_episode" in info:
            self._log_episodes(info, (s.step,))
        metrics = self.agent.learn(s.step)
        if metrics:
            self.last_metrics = metrics
        return metrics

    def _log_episodes(self, info: dict, transition_step) -> None:
        # The vector step's transitions are counted in env order, so two episodes ending in the same
        # vector step get distinct steps (TensorBoard keeps one point per step).
        done_idx = np.flatnonzero(info["_episode"])
        for i in done_idx:
            r, length, at = float(info["episode"]["r"][i]), int(info["episode"]["l"][i]), int(transition_step[i])
            self.logger.scalar("charts/episodic_return", r, at)
            self.logger.scalar("charts/episodic_length", length, at)
            self.result.episode_returns.append((at, r))
        self.state.episodes += len(done_idx)

    def _next_event(self) -> int:
        """The first step at which ``_periodic`` has something to do."""
        s = self.state
        due = min(s.next_log, s.next_ckpt)
        if self.eval_env is not None:
            due = min(due, s.next_eval)
        if self.inspector is not None:
            due = min(due, s.next_net_log)
        return due

    def _periodic(self) -> EvalRecord | None:
        """What runs every so many steps: logging, network statistics, evaluation, checkpoint."""
        s, run = self.state, self.cfg.run
        eval_due = self.eval_env is not None and s.step >= s.next_eval
        if s.step >= s.next_log:
            s.next_log += run.log_every * max(1, math.ceil((s.step - s.next_log + 1) / run.log_every))
            self._check_finite()
            self.logger.scalars(self.last_metrics, s.step)
            sps = (s.step - self.session_start_step) / max(1e-9, time.perf_counter() - self.t0)
            self.logger.scalar("charts/SPS", sps, s.step)
            if not eval_due:     # an evaluation at this step logs the elapsed time itself (one point a step)
                self.logger.scalar("charts/elapsed_seconds", self._elapsed(), s.step)
                self.elapsed_step = s.step
        if self.inspector is not None and s.step >= s.next_net_log:
            s.next_net_log += run.network_log_every
            self.inspector.log(self.logger, s.step)
        record = None
        if eval_due:
            s.next_eval += run.eval_every
            record = self._evaluate()
        if s.step >= s.next_ckpt:
            s.next_ckpt += run.checkpoint_every
            self._check_finite()
            self._save_checkpoint()
        return record

    # ----------------------------------------------------------------- finish
    def _finish(self) -> None:
        """The final greedy evaluation (unless one just ran) and the last checkpoint."""
        evals = self.result.evals
        if self.eval_env is not None and (not evals or evals[-1].step != self.state.step):
            self._call_back({}, self._evaluate())
        self._check_finite()
        self._save_checkpoint()
        self.logger.session_end("done")

    def _interrupted(self) -> None:
        self.result.status = "interrupted"
        self.result.stop_reason = f"interrupted (Ctrl-C or SIGTERM) at step {self.state.step:,}"
        try:
            self._check_finite()
            path = self._save_checkpoint()
            print(f"\ninterrupted at step {self.state.step:,}: checkpoint {path}", file=self.stream)
        except TrainingDiverged:
            pass
        self.logger.session_end("interrupted")

    def _write_result(self) -> RunResult:
        r, s = self.result, self.state
        r.step, r.episodes = s.step, s.episodes
        self.run_dir.write_result({
            "status": r.status, "stop_reason": r.stop_reason, "step": s.step, "episodes": s.episodes,
            "total_steps": self.cfg.run.total_steps,
            "final_eval": dataclasses.asdict(r.evals[-1]) if r.evals else None})
        return r

    def _close_envs(self) -> None:
        self.env.close()
        if self.eval_env is not None:
            self.eval_env.close()

    # ---------------------------------------------------------------- helpers
    def _elapsed(self) -> float:
        return self.state.elapsed + time.perf_counter() - self.t0

    def _evaluate(self) -> EvalRecord:
        s = self.state
        envs.sync_normalizer(self.eval_env, self.env)
        returns = evaluate(self.agent, self.eval_env, seed=(self.eval_seed + s.step) % 2**31)
        record = EvalRecord(step=s.step, elapsed=self._elapsed(), mean=float(returns.mean()),
                            std=float(returns.std()))
        self.logger.scalar("eval/episodic_return", record.mean, s.step)
        self.logger.scalar("eval/episodic_return_std", record.std, s.step)
        if self.elapsed_step != s.step:     # the final evaluation may fall on a step that logging just took
            self.logger.scalar("charts/elapsed_seconds", record.elapsed, s.step)
        self.result.evals.append(record)
        if s.best_eval is None or record.mean > s.best_eval:
            s.best_eval = record.mean
            self._save_checkpoint(best=True)
        return record

    def _save_checkpoint(self, best: bool = False) -> str:
        """Events and CSV to disk first, then the checkpoint: whatever a resume starts from, the curves
        up to it are on disk (a ``kill -9`` loses only what came after the last checkpoint). ``best``:
        the best-evaluation checkpoint (``RunDir.best_checkpoint_path``) instead of a step's."""
        s = self.state
        self.logger.flush(durable=True)
        loop_meta = dict(s.meta(), elapsed=self._elapsed())
        meta = {"algo": self.cfg.algo, "config": self.cfg.to_dict(), "loop": loop_meta,
                "env": {"info": self.env_info.to_dict(),
                        "observation_space": envs.space_to_dict(envs.raw_observation_space(self.env))}}
        arrays = {"agent": self.agent.state_dict(), "env": envs.env_state(self.env), "loop": s.arrays()}
        if best:
            return self.run_dir.save_best_checkpoint(meta, arrays)
        return self.run_dir.save_checkpoint(s.step, meta, arrays, self.cfg.run.keep_checkpoints)

    def _check_finite(self) -> None:
        step = self.state.step
        for tag, value in self.last_metrics.items():
            if not math.isfinite(value):
                raise TrainingDiverged(f"step {step}: {tag} is {value}; stopped, {self._kept()}")
        for name, net in self.agent.networks().items():
            if not np.isfinite(net.flat_params).all():
                raise TrainingDiverged(f"step {step}: parameters of network {name!r} are not finite; "
                                       f"stopped, {self._kept()}")

    def _kept(self) -> str:
        paths = self.run_dir.checkpoints()
        return f"last good checkpoint {os.path.basename(paths[-1])} kept" if paths else "no checkpoint was written yet"

    def _call_back(self, metrics: dict[str, float], record: EvalRecord | None) -> Any:
        if self.callback is not None:
            s = self.state
            return self.callback({"step": s.step, "agent": self.agent, "metrics": metrics, "env": self.env,
                           "obs": s.obs, "eval": record})

