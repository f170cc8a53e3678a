"""``run_sweep``: expand a grid, check every trial, refuse to mix sweeps, prepare generated data once, run the
trials on Ray and record each one's state in ``OUT/sweep.json`` (with the grid in ``OUT/sweep.yaml``)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..engine.recipe.yaml_io import ConfigError
from .grid import SweepSpec, Trial, check_trials, expand
from .ray_runner import SweepOutcome, run_trials
from .trial import trial_folder, trial_state

LOG = logging.getLogger("pcpeft")
SPEC_FILE, STATE_FILE = "sweep.yaml", "sweep.json"


@dataclass
class SweepPlan:
    """The trials of a sweep and the state each one is in now."""

    spec: SweepSpec
    trials: list[Trial]
    states: dict[str, str]

    def listing(self) -> str:
        """One line per trial: its state, folder and what it changes."""
        lines = []
        for trial in self.trials:
            what = [f"peft={trial.peft}" if trial.peft is not None else "", f"seed={trial.seed}",
                    f"ckpts={trial.ckpts}" if trial.ckpts else "", *trial.overrides]
            lines.append(f"{self.states[trial.name]:<11} {trial.name}  ({' '.join(w for w in what if w)})")
        return "\n".join(lines)


def plan_sweep(spec: SweepSpec, out_dir: str | Path, check_files: bool = True) -> SweepPlan:
    """Every trial, checked (recipe, overrides, method; ``ckpts`` files with ``check_files``) before anything
    runs, with its current state."""
    trials = expand(spec)
    check_trials(trials, check_files)
    out_dir = Path(out_dir)
    return SweepPlan(spec, trials, {t.name: trial_state(trial_folder(out_dir, t)) for t in trials})


def _check_same_sweep(spec: SweepSpec, out_dir: Path, resume: bool, plan: SweepPlan) -> None:
    saved = out_dir / SPEC_FILE
    started = [name for name, state in plan.states.items() if state != "new"]
    if saved.is_file():
        before = yaml.safe_load(saved.read_text())
        if before != spec.model_dump():
            raise ConfigError(f"{out_dir} holds another sweep ({saved} differs from this grid): choose another "
                              f"--out_dir")
        if not resume:
            raise ConfigError(f"{out_dir} holds this sweep already ({len(started)} of {len(plan.trials)} trials "
                              f"started): --resume continues it")
    elif started:
        raise ConfigError(f"{out_dir} holds runs that are not of this sweep ({started[0]}): choose another --out_dir")


def prepare_generated_data(trials: list[Trial]) -> None:
    """Generate each synthetic data set the trials read, once, before trials run side by side."""
    from ..commands.recipe_input import load_recipe
    from ..engine.data import build_dataset
    from ..engine.recipe.schema import validate_recipe

    seen: set[str] = set()
    for trial in trials:
        recipe = load_recipe(trial.recipe, trial.overrides)
        settings = validate_recipe(recipe.config, str(recipe.path))
        key = settings.dataset.model_dump_json()
        if settings.synthetic and key not in seen:
            seen.add(key)
            for subset in ("train", "test"):
                build_dataset(settings.dataset, subset)


def run_sweep(spec: SweepSpec, out_dir: str | Path, resume: bool = False, address: str | None = None,
              device: str = "cpu") -> SweepOutcome:
    """Run every trial of ``spec`` not finished yet under ``out_dir``; returns each trial's state."""
    out_dir = Path(out_dir).resolve()
    plan = plan_sweep(spec, out_dir)
    _check_same_sweep(spec, out_dir, resume, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SPEC_FILE).write_text(yaml.safe_dump(spec.model_dump(), sort_keys=False))
    todo = [t for t in plan.trials if plan.states[t.name] != "finished"]
    done = len(plan.trials) - len(todo)
    LOG.info(f"sweep: {len(plan.trials)} trials, {done} finished before, {len(todo)} to run "
             f"({spec.resources.cpu:g} CPU, {spec.resources.gpu:g} GPU each)")
    prepare_generated_data(todo)
    outcome = run_trials(todo, out_dir, spec.resources, device, address, already_done=done,
                         total=len(plan.trials))
    for trial in plan.trials:
        outcome.states.setdefault(trial.name, "finished")
    (out_dir / STATE_FILE).write_text(json.dumps({"trials": outcome.states, "errors": outcome.errors}, indent=2))
    return outcome


__all__ = ["SweepPlan", "plan_sweep", "prepare_generated_data", "run_sweep"]
