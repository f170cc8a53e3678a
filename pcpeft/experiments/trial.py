"""One trial of a sweep: an ordinary ``pcpeft train`` run in its own folder, resumed where it stopped, its failure
recorded in one line instead of stopping the sweep.

A trial folder ``OUT/<recipe>/<name>/`` holds what any run folder holds, plus ``trial.json`` (the trial's axes and
overrides) and, when it failed, ``failed.json`` (the one-line error). Its state is ``finished`` (results.json says
so), ``interrupted`` (a checkpoint, no finished results), ``failed`` or ``new``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .grid import Trial

LOG = logging.getLogger("pcpeft")
TRIAL_FILE, FAILED_FILE = "trial.json", "failed.json"


def trial_folder(out_dir: Path, trial: Trial) -> Path:
    return Path(out_dir) / trial.name


def trial_state(folder: Path) -> str:
    """``finished``, ``interrupted``, ``failed`` or ``new``."""
    results = folder / "results.json"
    if results.is_file():
        try:
            if json.loads(results.read_text()).get("finished") is True:
                return "finished"
        except (OSError, ValueError):
            pass
    if (folder / FAILED_FILE).is_file():
        return "failed"
    if (folder / "ckpt-last.pth").is_file():
        return "interrupted"
    return "new"


def one_line(err: BaseException) -> str:
    """An exception as one line: the project's user errors as they are, anything else with its type."""
    from ..errors import UserError

    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, UserError) else f"{type(err).__name__}: {text}"


def run_trial(record: dict, out_dir: str, device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Run (or resume) the trial ``record`` (:meth:`Trial.as_dict`) under ``out_dir``; returns
    ``{"state": "finished" | "failed", "error": str | None, "overall_acc": float | None}``."""
    import torch

    from ..commands.recipe_input import load_recipe
    from ..engine.training.finetune import RunOptions, train

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    trial = Trial.from_dict(record)
    folder = trial_folder(Path(out_dir), trial)
    state = trial_state(folder)
    if state == "finished":
        return {"state": "finished", "error": None, "overall_acc": None, "skipped": True}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILED_FILE).unlink(missing_ok=True)
    (folder / TRIAL_FILE).write_text(json.dumps(trial.as_dict(), indent=2))
    try:
        recipe = load_recipe(trial.recipe, trial.overrides)
        options = RunOptions(config_path=str(recipe.path), ckpts=trial.ckpts, peft=trial.peft,
                             exp_name=Path(trial.name).name, resume=state == "interrupted", seed=trial.seed,
                             device=device, experiments_root=str(out_dir), progress=False)
        results = train(recipe.config, options)
    except Exception as err:  # noqa: BLE001 - a trial's failure of any kind is recorded, the sweep goes on
        message = one_line(err)
        (folder / FAILED_FILE).write_text(json.dumps({"error": message}, indent=2))
        LOG.error(f"trial {trial.name} failed: {message}")
        return {"state": "failed", "error": message, "overall_acc": None, "skipped": False}
    best = results.get("best") or {}
    return {"state": "finished", "error": None, "overall_acc": best.get("overall_acc"), "skipped": False}


__all__ = ["FAILED_FILE", "TRIAL_FILE", "one_line", "run_trial", "trial_folder", "trial_state"]
