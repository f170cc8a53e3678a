"""The fine-tuning loop: recipe -> model (+ pretrained weights, + PEFT) -> train / evaluate -> experiment folder.

Reproducibility: every random draw of epoch e (sampler order, point shuffling, augmentation, dropout / drop
path) is seeded from (seed, e) at the start of the epoch, so a run resumed from the checkpoint of any finished
epoch continues bit-identically on CPU. Checkpoints are written atomically after every epoch.

Honest reporting: the test split is evaluated after every ``train.eval_every`` epochs. ``results.json`` gives the
last epoch's numbers next to the best epoch's, chosen on the validation split when there is one; otherwise it
says that the "best" one was selected on the test split (as the reference repos do) and is therefore optimistic.

The task (classification, part segmentation: :mod:`.tasks`) supplies batches' loss, predictions and metrics.
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ...datasets.errors import DatasetError
from ...peft import PeftModel
from ..data import build_dataset, dataset_record, validation_dataset
from ..data.checks import check_class_count, check_grouping, check_not_empty, split_source
from ..data.holdout import split_train_val
from ..recipe.schema import Settings, as_settings, recipe_section, section_difference, validate_recipe
from ..recipe.yaml_io import ConfigError, save_config
from ..runs.folders import RunFolder, experiment_dir, finished_results
from ..runs.json_files import json_safe, write_json
from ..runs.training_state import load_training_state, model_payload, restore_model_payload
from .distributed import barrier, init_distributed
from .hooks import CheckpointHook, EvaluationHook, History, LogHook, record_line
from .loop import LoopData, StepSettings, TrainingLoop
from .model_setup import build_model, load_for_test
from .optim import CosineWarmupSchedule, build_optimizer
from .precision import log_precision, select_precision
from .seeding import epoch_seed, seed_everything
from .tasks import smoothed_cross_entropy, task_for

LOG = logging.getLogger("pcpeft")

BEST_NOTE = ("'best' is the epoch with the highest test score (accuracy; instance mIoU for part segmentation), "
             "i.e. selected on the test split as the reference repos do; it is optimistic. 'last' is the final "
             "epoch's.")
BEST_NOTE_VAL = ("'best' is the epoch with the highest score on the validation split (carved from the training data "
                 "by dataset.val_fraction, or the data set's own); its test numbers are reported, and the test split "
                 "chose nothing. 'last' is the final epoch's.")


@dataclass
class RunOptions:
    """What the command line adds to a recipe."""

    config_path: str = "recipe.yaml"
    ckpts: str | None = None
    peft: Any = None
    exp_name: str = "default"
    resume: bool = False
    overwrite: bool = False  # move a previous run in the same folder aside (never delete it)
    allow_partial_load: bool = False  # accept a --ckpts file whose keys do not all fit the model
    seed: int = 0
    deterministic: bool = False
    device: str = "cpu"
    experiments_root: str = "experiments"
    stop_after_epochs: int | None = None  # end this invocation after that many epochs (a job time limit)
    progress: bool = True  # progress bars where pcpeft.progress shows them (a terminal, by default)
    extra_files: dict[str, str] = field(default_factory=dict)  # written into the run folder beside config.yaml

    def provenance(self) -> dict:
        """What a run records about how it was started (config.yaml ``run``, checkpoints); with ``--ckpts`` also
        its absolute path and sha256, so that ``pcpeft.load_run`` finds and checks the backbone later."""
        record = {k: v for k, v in vars(self).items()
                  if k not in ("progress", "stop_after_epochs", "overwrite", "extra_files")}
        if self.ckpts:
            from ..runs.loading import backbone_file_record

            record.update(backbone_file_record(self.ckpts))
        return record


def _setup_logging(exp_dir: Path, main: bool) -> None:
    LOG.setLevel(logging.INFO)
    LOG.handlers.clear()
    LOG.propagate = False
    if main:
        for handler in (logging.StreamHandler(), logging.FileHandler(exp_dir / "log.txt")):
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            LOG.addHandler(handler)


def _check_resume(state: dict, config: dict, options: RunOptions, model: PeftModel, path: Path) -> None:
    """Refuse to continue a run under another seed, model or method, naming the difference."""
    run = state.get("run") or {}
    if "seed" in run and run["seed"] != options.seed:
        raise ConfigError(f"--resume: {path} was started with --seed {run['seed']}, not {options.seed}; resume with "
                          f"--seed {run['seed']} (a different seed would make the run's provenance wrong)")
    saved_model, model_now = recipe_section(state.get("config"), "model"), recipe_section(config, "model")
    if saved_model != model_now:
        diff = section_difference(saved_model, model_now, "model")
        raise ConfigError(f"--resume: {path} was trained with another model ({diff})")
    methods_now = [c.to_dict() for c in model.peft_configs]
    if state.get("peft") is not None and state["peft"] != methods_now:
        raise ConfigError(f"--resume: {path} was trained with the method(s) "
                          f"{[m['method'] for m in state['peft']]} {state['peft']}, not {methods_now}")


def _check_data(splits: dict[str, Dataset], settings: Settings, task, per_rank_batch: int) -> None:
    """The splits (``{'training': ..., 'test': ..., 'validation': ...}``) fit the recipe: labels within
    ``model.num_classes``, clouds of at least ``dataset.npoints`` points, a batch no larger than the training set."""
    section = settings.dataset
    if task.num_classes is not None:
        check_class_count(task.num_classes, splits, section)
    if settings.modality == "points":
        for subset in ("training", "test"):
            data = splits[subset]
            available = data[0][0].shape[0]
            if available < section.npoints:
                source = split_source(data, section, subset)
                raise DatasetError(f"{source}: the {subset} clouds of {section.name} have {available} points, fewer "
                                   f"than dataset.npoints = {section.npoints}; lower dataset.npoints")
    train_set = splits["training"]
    if settings.train.drop_last and per_rank_batch > len(train_set):
        raise ConfigError(f"train.batch_size {settings.train.batch_size} is larger than the training set "
                          f"({len(train_set)} samples of {section.name}), so no step would run: lower it, or set "
                          f"train.drop_last: false")


@dataclass
class RunData:
    """The splits a run trains, chooses and tests on, and what config.yaml records about them."""

    train: Dataset
    test: Dataset
    validation: Dataset | None
    record: dict

    def splits(self) -> dict[str, Dataset]:
        extra = {"validation": self.validation} if self.validation is not None else {}
        return {"training": self.train, "test": self.test, **extra}


def _load_data(settings: Settings, model: PeftModel, task, seed: int, exp_dir: Path | None,
               per_rank_batch: int) -> RunData:
    """Build and check the splits: the training set (with a validation split carved out when the recipe asks, or
    the data set's own), the test set; ``exp_dir`` (the main process only) receives ``split.json``."""
    section = settings.dataset
    check_grouping(model, section)
    train_set = build_dataset(section, "train", seed=seed)
    check_not_empty(train_set, section, "train")
    record = dataset_record(train_set, exp_dir, task.num_classes)  # + split.json
    train_set, val_set = split_train_val(train_set, settings.val_fraction, getattr(section, "val_seed", 0))
    if val_set is None:
        val_set = validation_dataset(section)  # a PointCloudFolder's ROOT/val/, ShapeNetPart's val
    test_set = build_dataset(section, "test")
    check_not_empty(test_set, section, "test")
    data = RunData(train_set, test_set, val_set, record)
    _check_data(data.splits(), settings, task, per_rank_batch)
    task.check_data(model, train_set)
    return data


def train(config: dict, options: RunOptions) -> dict:
    """Fine-tune according to ``config``; returns the results dict also written to ``results.json``.

    The recipe is validated first (:func:`validate_recipe`), the run folder claimed (:class:`RunFolder`), the
    model, data and any resumed state checked; only then is ``config.yaml`` written and training starts.
    ``resume`` of a run that has finished all its epochs writes nothing and returns its ``results.json`` with an
    ``already_finished`` line added; a larger ``scheduler.epochs`` extends it only where that is exactly a longer
    run (:func:`_keep_finished`).
    """
    settings = validate_recipe(config, options.config_path)
    config = settings.raw  # a PointCloudFolder recipe gets model.num_classes from its class folders
    device = torch.device(options.device)
    rank, world = init_distributed(device)
    main = rank == 0
    exp_dir = experiment_dir(options.experiments_root, options.config_path, options.exp_name)
    folder = RunFolder(exp_dir, options.resume, options.overwrite, options.experiments_root) if main else None
    if folder is not None:
        folder.claim()
    try:
        barrier()
        finished = finished_results(exp_dir) if options.resume else None
        if finished is not None and _keep_finished(finished, settings, exp_dir):
            done = finished.get("epochs_run")
            return {**finished, "already_finished": f"{exp_dir}: already finished ({done} of {done} epochs, "
                                                    f"results.json finished: true); nothing to resume, "
                                                    f"results.json unchanged"}
        return _train(settings, config, options, exp_dir, device, rank, world)
    finally:
        if folder is not None:
            folder.release()


def _schedule_lrs(settings: Settings, epochs: int, count: int) -> list[float]:
    """The learning rates of the first ``count`` epochs of a run of ``epochs`` epochs under the recipe's schedule."""
    sched, base = settings.scheduler, settings.optimizer.lr
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    schedule = CosineWarmupSchedule(optimizer, epochs, sched.warmup_epochs, sched.warmup_lr, sched.min_lr,
                                    sched.cosine_epochs)
    return [schedule.lr_at(index, base) for index in range(count)]


def _keep_finished(finished: dict, settings: Settings, exp_dir: Path) -> bool:
    """Whether ``--resume`` leaves a finished run as it is (True: it ran at least ``scheduler.epochs``). A larger
    ``scheduler.epochs`` extends it only when that is exactly a longer run: the learning rates of the epochs it ran
    are those of the longer schedule (as in a warm-up, or with ``scheduler.cosine_epochs``); otherwise a
    :class:`ConfigError` says so."""
    done, epochs = finished.get("epochs_run"), settings.scheduler.epochs
    if not isinstance(done, int) or epochs <= done:
        return True
    ran, longer = _schedule_lrs(settings, done, done), _schedule_lrs(settings, epochs, done)
    changed = next((e for e in range(done) if ran[e] != longer[e]), None)
    if changed is not None:
        raise ConfigError(f"--resume: {exp_dir} has finished all its {done} epochs; scheduler.epochs = {epochs} "
                          f"cannot extend it cleanly: its epoch {changed} ran at learning rate {ran[changed]:.4g}, "
                          f"a {epochs}-epoch schedule has {longer[changed]:.4g} there; start a new run (another "
                          f"--exp_name) with scheduler.epochs = {epochs}")
    return False


def _train(settings: Settings, config: dict, options: RunOptions, exp_dir: Path, device: torch.device, rank: int,
           world: int) -> dict:
    main = rank == 0
    _setup_logging(exp_dir, main)
    LOG.info(f"device: {device}" + (f" ({world} processes)" if world > 1 else ""))
    if options.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = _build_logged_model(settings, options, device)
    task = task_for(settings)
    tcfg = settings.train
    per_rank_batch = max(1, tcfg.batch_size // world)
    data = _load_data(settings, model, task, options.seed, exp_dir if main else None, per_rank_batch)
    epochs = settings.scheduler.epochs
    optimizer = build_optimizer(model, settings.optimizer.lr, settings.optimizer.weight_decay)
    schedule = CosineWarmupSchedule(optimizer, epochs, settings.scheduler.warmup_epochs, settings.scheduler.warmup_lr,
                                    settings.scheduler.min_lr, settings.scheduler.cosine_epochs)
    precision = log_precision(select_precision(device, tcfg.amp, tcfg.amp_cpu))  # CUDA fp16 / opt-in CPU bf16
    use_amp = device.type == "cuda" and tcfg.amp  # the gradient scaler: fp16 only (bf16 needs none)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, start_epoch = History(), 0
    if options.resume:
        history, start_epoch = _resume(exp_dir, config, options, model, optimizer, schedule, scaler, epochs)
    provenance = options.provenance()  # once: it hashes the --ckpts file
    if main and not (exp_dir / "config.yaml").is_file():
        for name, text in options.extra_files.items():
            (exp_dir / name).write_text(text)
        save_config({**config, "run": {**provenance, **data.record}}, exp_dir / "config.yaml")  # the run has started

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    hooks: list = [EvaluationHook(task, data.test, data.validation, history, exp_dir, tcfg.eval_every, main)]
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(exp_dir / "tb"))
        payload = _checkpoint_payload(config, provenance, history, schedule, scaler if use_amp else None)
        hooks += [LogHook(record_line, writer), CheckpointHook(exp_dir / "ckpt-last.pth", payload)]
    stop_at = epochs if options.stop_after_epochs is None else min(epochs, start_epoch + options.stop_after_epochs)
    loop = TrainingLoop(model, train_model, task, optimizer, schedule,
                        LoopData(data.train, per_rank_batch, tcfg.drop_last, tcfg.num_workers),
                        StepSettings(tcfg.grad_clip, tcfg.aux_loss_weight, precision, scaler), device, options.seed,
                        epochs, hooks, rank, world, options.progress)
    loop.run(start_epoch, stop_at)
    if writer is not None:
        writer.close()
    results = _results(settings, task, options, model, history, loop.step_times, stop_at == epochs,
                       validated=data.validation is not None)
    if main:
        write_json(exp_dir / "results.json", results)
        LOG.info(f"results: {exp_dir / 'results.json'}")
    return json_safe(results)


def _build_logged_model(settings: Settings, options: RunOptions, device: torch.device) -> PeftModel:
    """The run's model (backbone, ``--ckpts``, methods) on ``device``, its load report and trainable share logged."""
    peft_spec = options.peft if options.peft is not None else settings.peft
    seed_everything(options.seed)
    model, report = build_model(settings, options.ckpts, peft_spec, options.allow_partial_load)
    if report is not None:
        LOG.info(str(report))
    elif settings.train.require_pretrained:
        raise ConfigError("this recipe needs --ckpts (a pretrained checkpoint)")
    model.to(device)
    trainable, total = model.trainable_parameters()
    methods = [c.method for c in model.peft_configs]
    LOG.info(f"method {methods}: trainable {trainable:,} / {total:,} ({100 * trainable / total:.3f}%)")
    return model


def _resume(exp_dir: Path, config: dict, options: RunOptions, model: PeftModel, optimizer, schedule, scaler,
            epochs: int) -> tuple[History, int]:
    """Restore model, optimiser, schedule, scaler and history from ``ckpt-last.pth`` after checking it belongs to
    this run; (history, first epoch to run)."""
    last_ckpt = exp_dir / "ckpt-last.pth"
    state = load_training_state(last_ckpt)
    _check_resume(state, config, options, model, last_ckpt)
    restore_model_payload(model, state, last_ckpt)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    history = History(state["history"], state["best"], state.get("last") or {})
    LOG.info(f"resumed from {last_ckpt} after epoch {state['epoch']}")
    if state["epoch"] + 1 < epochs and finished_results(exp_dir) is not None:
        LOG.info(f"extending the finished run from {state['epoch'] + 1} to {epochs} epochs (the learning rates "
                 f"of the epochs it ran are those of a {epochs}-epoch run)")
    return history, state["epoch"] + 1


def _checkpoint_payload(config: dict, provenance: dict, history: History, schedule, scaler):
    """What ``ckpt-last.pth`` holds after an epoch: everything a resume needs, tensors only."""
    def payload(loop: TrainingLoop, epoch: int, record: dict) -> dict:
        return {"epoch": epoch, "config": config, "run": provenance,
                "peft": [c.to_dict() for c in loop.model.peft_configs], **model_payload(loop.model),
                "optimizer": loop.optimizer.state_dict(), "scheduler": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "history": history.epochs, "best": history.best, "last": history.last}

    return payload


def _results(settings: Settings, task, options, model, history, step_times, finished, validated: bool = False
             ) -> dict:
    section, images = settings.dataset, settings.modality == "images"
    trainable, total = model.trainable_parameters()
    return {
        "task": task.name, "dataset": section.name, "split": getattr(section, "split", None),
        "synthetic": settings.synthetic,
        "modality": settings.modality, "npoints": None if images else section.npoints,
        "voting": False, "augmentation": task.describe_augmentation(),
        "seed": options.seed, "device": str(options.device), "methods": [c.method for c in model.peft_configs],
        "pretrained": options.ckpts,
        "trainable_parameters": trainable, "total_parameters": total, "trainable_percent": 100 * trainable / total,
        "epochs_run": len(history.epochs), "finished": finished,
        "last": history.last or None, "best": history.best or None,
        "best_chosen_on": "validation" if validated else "test",
        "note": BEST_NOTE_VAL if validated else BEST_NOTE,
        "median_step_seconds": statistics.median(step_times) if step_times else None,
        "history": history.epochs,
    }


def evaluate_run(config: dict | Settings, model: PeftModel, device: torch.device, vote: bool, times: int = 10,
                 seed: int = 0) -> dict:
    """The task's test metrics of ``model`` on the recipe's test split: one pass, or voting (``times`` >= 1
    re-samples; classification only)."""
    settings = as_settings(config)
    if times < 1:
        raise ConfigError(f"--vote_times {times}: voting needs at least one pass")
    rank, world = init_distributed(device)
    section = settings.dataset
    test_set = build_dataset(section, "test")
    check_not_empty(test_set, section, "test")
    check_grouping(model, section)
    metrics = task_for(settings).test(model, test_set, device, vote, times, seed, rank, world)
    return json_safe({"dataset": section.name, "split": getattr(section, "split", None),
                      "npoints": getattr(section, "npoints", None), "task": settings.task, "voting": vote,
                      "vote_times": times if vote else None, **metrics})


__all__ = ["RunOptions", "build_model", "train", "load_for_test", "evaluate_run", "smoothed_cross_entropy",
           "write_json", "epoch_seed", "seed_everything", "restore_model_payload"]
