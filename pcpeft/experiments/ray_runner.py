"""Run a sweep's trials on Ray Tune: a local Ray instance by default (this machine's CPUs and GPUs), or an existing
cluster with ``address``, where trials spread over the nodes and each gets the resources it asks for.

Ray schedules; pcpeft's run folders keep the state. A finished trial is never submitted again, an interrupted one
resumes from its last checkpoint (bit-identically on CPU, as a single run does), and a failed trial records its
one-line error without stopping the others (:mod:`.trial`).
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .grid import Resources, Trial
from .trial import run_trial

LOG = logging.getLogger("pcpeft")


@dataclass
class SweepOutcome:
    """Per trial name: ``finished`` or ``failed``, and the failures' one-line errors."""

    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(state == "failed" for state in self.states.values())


def _trainable(config: dict) -> None:
    """What Ray runs per trial: :func:`run_trial`, its outcome reported to Tune."""
    from ray import tune

    outcome = run_trial(config["trial"], config["out_dir"], config["device"], config["threads"])
    tune.report({key: value for key, value in outcome.items() if value is not None})


class SweepProgress:
    """One line per trial event: done / running / failed of the whole sweep, elapsed and estimated remaining."""

    def __init__(self, total: int, already: int) -> None:
        self.total, self.done, self.failed, self.running = total, already, 0, 0
        self.started = time.monotonic()
        self.finished_here = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        left = self.total - self.done - self.failed
        remaining = (elapsed / self.finished_here * left / max(self.running, 1)) if self.finished_here else None
        eta = f", ~{_clock(remaining)} remaining" if remaining is not None and left else ""
        return (f"[sweep] {self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
                f"{_clock(elapsed)} elapsed{eta}")

    def event(self, kind: str) -> None:
        if kind == "start":
            self.running += 1
        elif kind in ("done", "failed"):
            self.running = max(0, self.running - 1)
            self.finished_here += 1
            if kind == "done":
                self.done += 1
            else:
                self.failed += 1
        print(self.line(), file=sys.stderr, flush=True)  # looked up now: Tune pickles this object


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _callback(progress: SweepProgress):
    from ray import tune

    class Reporter(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.event("start")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            trial.pcpeft_state = result.get("state")

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.event("failed" if getattr(trial, "pcpeft_state", None) == "failed" else "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.event("failed")

    return Reporter()


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` (an existing cluster) or start a local Ray instance with this machine's CPUs and GPUs;
    nothing happens when Ray is already running in this process."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Tune status tables: the sweep prints its own progress
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


def run_trials(trials: list[Trial], out_dir: Path, resources: Resources, device: str, address: str | None = None,
               already_done: int = 0, total: int | None = None) -> SweepOutcome:
    """Run ``trials`` on Ray Tune (each an ordinary run under ``out_dir``); returns every trial's state."""
    from ray import tune

    from .trial import FAILED_FILE, trial_folder, trial_state

    out_dir = Path(out_dir).resolve()
    outcome = SweepOutcome()
    if not trials:
        return outcome
    start_ray(address)
    ask = {"cpu": resources.cpu, "gpu": resources.gpu}
    trainable = tune.with_resources(_trainable, ask)
    space = {"trial": tune.grid_search([t.as_dict() for t in trials]), "out_dir": str(out_dir), "device": device,
             "threads": max(1, int(resources.cpu))}
    progress = SweepProgress(total or len(trials), already_done)
    with tempfile.TemporaryDirectory(prefix="pcpeft-tune-") as storage:  # Tune's own state: pickles, kept out of OUT
        tuner = tune.Tuner(trainable, param_space=space,
                           tune_config=tune.TuneConfig(num_samples=1, reuse_actors=False,
                                                       trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
                           run_config=tune.RunConfig(storage_path=storage, name="sweep", verbose=0,
                                                     callbacks=[_callback(progress)],
                                                     failure_config=tune.FailureConfig(max_failures=0)))
        results = tuner.fit()
    for trial in trials:
        folder = trial_folder(out_dir, trial)
        state = trial_state(folder)
        outcome.states[trial.name] = "finished" if state == "finished" else "failed"
        if state != "finished":
            failed = folder / FAILED_FILE
            outcome.errors[trial.name] = (_read_error(failed) if failed.is_file()
                                          else "the trial ended without results (see Ray's log)")
    for error in results.errors:
        LOG.error(f"a trial process failed: {error}")
    return outcome


def _read_error(path: Path) -> str:
    import json

    try:
        return str(json.loads(path.read_text()).get("error"))
    except (OSError, ValueError):
        return f"{path} is unreadable"


__all__ = ["SweepOutcome", "SweepProgress", "run_trials", "start_ray"]
