"""The fine-tuning loop: recipe -> model (+ pretrained weights, + PEFT) -> train / evaluate -> experiment folder.

Reproducibility: every random draw of epoch e (sampler order, point shuffling, augmentation, dropout / drop
path) is seeded from (seed, e) at the start of the epoch, so a run resumed from the checkpoint of any finished
epoch continues bit-identically on CPU. Checkpoints are written atomically after every epoch.

Honest reporting: the test split is evaluated after every ``train.eval_every`` epochs. ``results.json`` gives the
last epoch's numbers next to the best epoch's, and says that the "best" one was selected on the test split (as
the reference repos do) and is therefore optimistic.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from ..datasets.errors import DatasetError
from ..models.checkpoints import CheckpointError
from ..peft import PeftModel
from .checkpointing import load_training_state, save_atomic
from .config import ConfigError, save_config
from .data import (batch_transforms, build_dataset, dataset_record, describe_augmentation, is_image_config,
                   validation_dataset)
from .distributed import barrier, init_distributed
from .evaluate import compute_metrics, predict, predict_vote
from .model_setup import build_model, load_for_test
from .optim import CosineWarmupSchedule, build_optimizer
from .run_folder import RunFolder, experiment_dir
from .schema import Settings, as_settings, validate_recipe
from .validation_split import split_train_val

LOG = logging.getLogger("pcpeft")

BEST_NOTE = ("'best' is the epoch with the highest test accuracy, i.e. selected on the test split as the reference "
             "repos do; it is optimistic. 'last' is the final epoch's accuracy.")
BEST_NOTE_VAL = ("'best' is the epoch with the highest accuracy on the validation split carved from the training data "
                 "(dataset.val_fraction); its test accuracy is reported, and the test split chose nothing. 'last' is the "
                 "final epoch's accuracy.")


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
    progress: bool = True

    def provenance(self) -> dict:
        """What a run records about how it was started (config.yaml ``run``, checkpoints); with ``--ckpts`` also
        its absolute path and sha256, so that ``pcpeft.load_run`` finds and checks the backbone later."""
        record = {k: v for k, v in vars(self).items() if k not in ("progress", "stop_after_epochs", "overwrite")}
        if self.ckpts:
            from .runs import backbone_file_record

            record.update(backbone_file_record(self.ckpts))
        return record


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2 ** 31)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Point-BERT's label smoothing: 1-eps on the target, eps/(C-1) elsewhere (eps=0: plain cross-entropy)."""
    if eps <= 0:
        return F.cross_entropy(logits, target)
    one_hot = torch.zeros_like(logits).scatter(1, target.view(-1, 1), 1)
    soft = one_hot * (1 - eps) + (1 - one_hot) * eps / (logits.shape[1] - 1)
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _model_payload(model: PeftModel) -> dict:
    """Weights a checkpoint carries: the full backbone for full fine-tuning (a reference-layout ``base_model``
    that ``load_checkpoint`` reads), otherwise only the adapter tensors."""
    if [c.method for c in model.peft_configs] == ["full"]:
        return {"base_model": model.base_model.state_dict(), "model": None}
    return {"base_model": None, "model": model.adapter_state_dict()}


def restore_model_payload(model: PeftModel, payload: dict, path: str | Path = "<checkpoint>") -> None:
    if payload.get("base_model") is not None:
        try:
            model.base_model.load_state_dict(payload["base_model"])
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not fit the model: {str(err).splitlines()[0]}") from None
    elif payload.get("model") is not None:
        missing = set(model.adapter_state_dict()) - set(payload["model"])
        if missing:
            raise CheckpointError(f"{path} lacks adapter tensors {sorted(missing)[:5]}")
        try:
            model.load_state_dict(payload["model"], strict=False)
        except RuntimeError as err:
            raise CheckpointError(f"{path} does not fit the model: {str(err).splitlines()[0]}") from None


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
    saved_model, model_now = (state.get("config") or {}).get("model", {}), config.get("model", {})
    if saved_model != model_now:
        keys = sorted(k for k in set(saved_model) | set(model_now) if saved_model.get(k) != model_now.get(k))
        diff = ", ".join(f"model.{k}: {saved_model.get(k)!r} -> {model_now.get(k)!r}" for k in keys)
        raise ConfigError(f"--resume: {path} was trained with another model ({diff})")
    methods_now = [c.to_dict() for c in model.peft_configs]
    if state.get("peft") is not None and state["peft"] != methods_now:
        raise ConfigError(f"--resume: {path} was trained with the method(s) "
                          f"{[m['method'] for m in state['peft']]} {state['peft']}, not {methods_now}")


def _json_safe(value: Any) -> Any:
    """NaN / infinity -> None, recursively, so results.json is always valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as strict JSON (no bare NaN), atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_json_safe(payload), indent=2, allow_nan=False))
    os.replace(tmp, path)


def _check_data(train_set, test_set, settings: Settings, per_rank_batch: int) -> None:
    name = settings.dataset_spec.get("name")
    for subset, data in (("training", train_set), ("test", test_set)):
        if len(data) == 0:
            raise DatasetError(f"the {subset} split of {name} (root {settings.dataset_spec.get('root')}) is empty")
    npoints = settings.dataset_spec.get("npoints")
    if npoints is not None:
        for subset, data in (("training", train_set), ("test", test_set)):
            available = data[0][0].shape[0]
            if available < npoints:
                source = getattr(data, "path", None) or settings.dataset_spec.get("root")
                raise DatasetError(f"{source}: the {subset} clouds of {name} have {available} points, fewer than "
                                   f"dataset.npoints = {npoints}; lower dataset.npoints")
    if settings.train.drop_last and per_rank_batch > len(train_set):
        raise ConfigError(f"train.batch_size {settings.train.batch_size} is larger than the training set "
                          f"({len(train_set)} samples of {name}), so no step would run: lower it, or set "
                          f"train.drop_last: false")


def train(config: dict, options: RunOptions) -> dict:
    """Fine-tune according to ``config``; returns the results dict also written to ``results.json``.

    The recipe is validated first (:func:`validate_recipe`), the run folder claimed (:class:`RunFolder`), the
    model, data and any resumed state checked; only then is ``config.yaml`` written and training starts.
    """
    settings = validate_recipe(config, options.config_path)
    config = settings.raw  # a PointCloudFolder recipe gets model.num_classes from its class folders
    device = torch.device(options.device)
    rank, world = init_distributed(device)
    main = rank == 0
    exp_dir = experiment_dir(options.experiments_root, options.config_path, options.exp_name)
    folder = RunFolder(exp_dir, options.resume, options.overwrite) if main else None
    if folder is not None:
        folder.claim()
    try:
        barrier()
        return _train(settings, config, options, exp_dir, device, rank, world)
    finally:
        if folder is not None:
            folder.release()


def _train(settings: Settings, config: dict, options: RunOptions, exp_dir: Path, device: torch.device, rank: int,
           world: int) -> dict:
    main = rank == 0
    _setup_logging(exp_dir, main)
    if options.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

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

    train_set = build_dataset(settings.dataset_spec, "train", seed=options.seed)
    data_record = dataset_record(train_set, exp_dir if main else None, settings.num_classes)  # + split.json
    train_set, val_set = split_train_val(train_set, settings.val_fraction, getattr(settings.dataset, "val_seed", 0))
    if val_set is None:
        val_set = validation_dataset(settings.dataset_spec)  # a PointCloudFolder's ROOT/val/
    test_set = build_dataset(settings.dataset_spec, "test")
    tcfg = settings.train
    per_rank_batch = max(1, tcfg.batch_size // world)
    _check_data(train_set, test_set, settings, per_rank_batch)
    epochs = settings.scheduler.epochs

    optimizer = build_optimizer(model, settings.optimizer.lr, settings.optimizer.weight_decay)
    schedule = CosineWarmupSchedule(optimizer, epochs, settings.scheduler.warmup_epochs, settings.scheduler.warmup_lr,
                                    settings.scheduler.min_lr)
    from .precision import log_precision, select_precision

    precision = log_precision(select_precision(device, tcfg.amp, tcfg.amp_cpu))  # CUDA fp16 / opt-in CPU bf16
    use_amp = device.type == "cuda" and tcfg.amp  # the gradient scaler: fp16 only (bf16 needs none)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, start_epoch = History(), 0
    last_ckpt = exp_dir / "ckpt-last.pth"
    if options.resume:
        state = load_training_state(last_ckpt)
        _check_resume(state, config, options, model, last_ckpt)
        restore_model_payload(model, state, last_ckpt)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History(state["history"], state["best"], state.get("last") or {})
        start_epoch = state["epoch"] + 1
        LOG.info(f"resumed from {last_ckpt} after epoch {state['epoch']}")
    provenance = options.provenance()  # once: it hashes the --ckpts file
    if main and not (exp_dir / "config.yaml").is_file():
        save_config({**config, "run": {**provenance, **data_record}}, exp_dir / "config.yaml")  # the run has started

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(exp_dir / "tb"))
    from tqdm import tqdm

    step_times: list[float] = []
    stop_at = epochs if options.stop_after_epochs is None else min(epochs, start_epoch + options.stop_after_epochs)

    for epoch in range(start_epoch, stop_at):
        schedule.step(epoch)
        generator = seed_everything(epoch_seed(options.seed, epoch))
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        if world > 1:
            sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=options.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(train_set, generator=generator)
        loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler, drop_last=tcfg.drop_last,
                            num_workers=tcfg.num_workers)
        transform, eval_transform = batch_transforms(config, generator)
        model.train()
        losses, aux_losses, correct, seen = [], [], 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (main and options.progress), leave=False)
        for points, labels in bar:
            start = time.perf_counter()
            points, labels = transform(points.to(device)), labels.to(device)
            with precision.autocast():
                logits = train_model(points)
                loss = smoothed_cross_entropy(logits.float(), labels, tcfg.label_smoothing)
                aux = model.aux_loss()
                total_loss = loss + tcfg.aux_loss_weight * aux
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total_loss).backward()
            if tcfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], tcfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step_times.append(time.perf_counter() - start)
            losses.append(loss.item())
            aux_losses.append(float(aux.detach()))
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
                  "aux_loss": float(np.mean(aux_losses)), "train_acc": 100.0 * correct / max(seen, 1)}
        if (epoch + 1) % tcfg.eval_every == 0 or epoch + 1 == epochs:
            logits, labels = predict(model, test_set, eval_transform, device, per_rank_batch, tcfg.num_workers, rank,
                                     world)
            metrics = compute_metrics(logits, labels, settings.num_classes)
            record.update(test_acc=metrics["overall_acc"], test_mean_class_acc=metrics["mean_class_acc"])
            if val_set is not None:
                val_logits, val_labels = predict(model, val_set, eval_transform, device, per_rank_batch,
                                                 tcfg.num_workers, rank, world)
                metrics["val_acc"] = compute_metrics(val_logits, val_labels, settings.num_classes)["overall_acc"]
                record["val_acc"] = metrics["val_acc"]
            chooser = "val_acc" if val_set is not None else "overall_acc"
            if not history.best or metrics[chooser] > history.best[chooser]:
                history.best = {"epoch": epoch, **metrics}
                if main:
                    _save_best(model, exp_dir)
            history.last = {"epoch": epoch, **metrics}
        history.epochs.append(record)
        if main:
            LOG.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            for key, value in record.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
            save_atomic({"epoch": epoch, "config": config, "run": provenance,
                         "peft": [c.to_dict() for c in model.peft_configs],
                         **_model_payload(model), "optimizer": optimizer.state_dict(),
                         "scheduler": schedule.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                         "history": history.epochs, "best": history.best, "last": history.last},
                        last_ckpt)
        barrier()
    if writer is not None:
        writer.close()
    finished = stop_at == epochs
    results = _results(settings, options, model, history, step_times, finished, trainable, total,
                       validated=val_set is not None)
    if main:
        write_json(exp_dir / "results.json", results)
        LOG.info(f"results: {exp_dir / 'results.json'}")
    return _json_safe(results)


def _save_best(model: PeftModel, exp_dir: Path) -> None:
    save_atomic({"peft": [c.to_dict() for c in model.peft_configs], **_model_payload(model)}, exp_dir / "ckpt-best.pth")
    if [c.method for c in model.peft_configs] != ["full"]:
        model.save_pretrained(exp_dir / "adapter-best")


def _results(settings: Settings, options, model, history, step_times, finished, trainable, total,
             validated: bool = False) -> dict:
    images = is_image_config(settings.raw)
    spec = settings.dataset_spec
    augmentation = settings.augmentation.model_dump()
    return {
        "dataset": spec.get("name"), "split": spec.get("split"), "synthetic": spec.get("name") == "SyntheticDemo",
        "modality": "images" if images else "points", "npoints": None if images else spec.get("npoints"),
        "voting": False,
        "augmentation": ("hflip" if augmentation["hflip"] else "none") if images else describe_augmentation(
            augmentation),
        "seed": options.seed, "methods": [c.method for c in model.peft_configs], "pretrained": options.ckpts,
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
    """Test accuracy of ``model`` on the recipe's test split, one pass or voting (``times`` >= 1 re-samples)."""
    settings = as_settings(config)
    if times < 1:
        raise ConfigError(f"--vote_times {times}: voting needs at least one pass")
    rank, world = init_distributed(device)
    spec = settings.dataset_spec
    test_set = build_dataset(spec, "test")
    if len(test_set) == 0:
        raise DatasetError(f"the test split of {spec.get('name')} (root {spec.get('root')}) is empty")
    npoints = spec.get("npoints")
    batch = settings.eval_batch_size
    if vote and is_image_config(settings.raw):
        raise ConfigError("voting re-samples point clouds; it does not apply to image datasets")
    if vote:
        logits, labels = predict_vote(model, test_set, npoints, device, times, batch, seed, rank=rank, world=world)
    else:
        logits, labels = predict(model, test_set, batch_transforms(settings.raw, torch.Generator())[1], device, batch,
                                 rank=rank, world=world)
    metrics = compute_metrics(logits, labels, settings.num_classes)
    return _json_safe({"dataset": spec.get("name"), "split": spec.get("split"), "npoints": npoints,
                       "voting": vote, "vote_times": times if vote else None, **metrics})


__all__ = ["RunOptions", "build_model", "train", "load_for_test", "evaluate_run", "smoothed_cross_entropy",
           "write_json"]
