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

from ..models.checkpoints import LoadReport, load_checkpoint, load_checkpoint_object, read_checkpoint_file
from ..models.registry import create_model
from ..peft import PeftModel, get_peft_model
from .checkpointing import load_training_state, save_atomic
from .config import get, save_config
from .data import batch_transforms, build_dataset, describe_augmentation, is_image_config
from .distributed import barrier, init_distributed
from .evaluate import compute_metrics, predict, predict_vote
from .optim import CosineWarmupSchedule, build_optimizer

LOG = logging.getLogger("pcpeft")

BEST_NOTE = ("'best' is the epoch with the highest test accuracy, i.e. selected on the test split as the reference "
             "repos do; it is optimistic. 'last' is the final epoch's accuracy.")


@dataclass
class RunOptions:
    """What the command line adds to a recipe."""

    config_path: str = "recipe.yaml"
    ckpts: str | None = None
    peft: Any = None
    exp_name: str = "default"
    resume: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str = "cpu"
    experiments_root: str = "experiments"
    stop_after_epochs: int | None = None  # end this invocation after that many epochs (a job time limit)
    progress: bool = True


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


def build_model(config: dict, ckpts: str | None, peft: Any) -> tuple[PeftModel, LoadReport | None]:
    """Backbone from ``config['model']``, pretrained weights from ``ckpts``, PEFT from ``peft`` (default full)."""
    spec = dict(config.get("model", {}))
    name = spec.pop("name", "point_mae")
    backbone = create_model(name, **spec)
    report = load_checkpoint(backbone, ckpts) if ckpts else None
    return get_peft_model(backbone, peft if peft is not None else "full"), report


def experiment_dir(options: RunOptions) -> Path:
    return Path(options.experiments_root) / Path(options.config_path).stem / options.exp_name


def _model_payload(model: PeftModel) -> dict:
    """Weights a checkpoint carries: the full backbone for full fine-tuning (a reference-layout ``base_model``
    that ``load_checkpoint`` reads), otherwise only the adapter tensors."""
    if [c.method for c in model.peft_configs] == ["full"]:
        return {"base_model": model.base_model.state_dict(), "model": None}
    return {"base_model": None, "model": model.adapter_state_dict()}


def restore_model_payload(model: PeftModel, payload: dict) -> None:
    if payload.get("base_model") is not None:
        model.base_model.load_state_dict(payload["base_model"])
    elif payload.get("model") is not None:
        missing = set(model.adapter_state_dict()) - set(payload["model"])
        if missing:
            raise RuntimeError(f"checkpoint lacks adapter tensors {sorted(missing)[:5]}")
        model.load_state_dict(payload["model"], strict=False)


def _setup_logging(exp_dir: Path, main: bool) -> None:
    LOG.setLevel(logging.INFO)
    LOG.handlers.clear()
    LOG.propagate = False
    if main:
        for handler in (logging.StreamHandler(), logging.FileHandler(exp_dir / "log.txt")):
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            LOG.addHandler(handler)


def train(config: dict, options: RunOptions) -> dict:
    """Fine-tune according to ``config``; returns the results dict also written to ``results.json``."""
    device = torch.device(options.device)
    rank, world = init_distributed(device)
    main = rank == 0
    exp_dir = experiment_dir(options)
    if main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_config({**config, "run": {k: v for k, v in vars(options).items() if k != "progress"}},
                    exp_dir / "config.yaml")
    barrier()
    _setup_logging(exp_dir, main)
    if options.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

    peft_spec = options.peft if options.peft is not None else config.get("peft")
    seed_everything(options.seed)
    model, report = build_model(config, options.ckpts, peft_spec)
    if report is not None:
        LOG.info(str(report))
    elif get(config, "train.require_pretrained", False):
        raise ValueError("this recipe needs --ckpts (a pretrained checkpoint)")
    model.to(device)
    trainable, total = model.trainable_parameters()
    methods = [c.method for c in model.peft_configs]
    LOG.info(f"method {methods}: trainable {trainable:,} / {total:,} ({100 * trainable / total:.3f}%)")

    train_set = build_dataset(config["dataset"], "train", seed=options.seed)
    test_set = build_dataset(config["dataset"], "test")
    num_classes = config["model"]["num_classes"]
    batch_size = get(config, "train.batch_size", 32)
    per_rank_batch = max(1, batch_size // world)
    workers = get(config, "train.num_workers", 0)
    epochs = get(config, "scheduler.epochs", 300)
    augmentation = config.get("augmentation", {})

    optimizer = build_optimizer(model, get(config, "optimizer.lr", 5e-4), get(config, "optimizer.weight_decay", 0.05))
    schedule = CosineWarmupSchedule(optimizer, epochs, get(config, "scheduler.warmup_epochs", 10),
                                    get(config, "scheduler.warmup_lr", 1e-6), get(config, "scheduler.min_lr", 1e-6))
    use_amp = device.type == "cuda" and get(config, "train.amp", True)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, start_epoch = History(), 0
    last_ckpt = exp_dir / "ckpt-last.pth"
    if options.resume:
        if not last_ckpt.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last_ckpt}")
        state = load_training_state(last_ckpt)
        restore_model_payload(model, state)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History(state["history"], state["best"], state.get("last") or {})
        start_epoch = state["epoch"] + 1
        LOG.info(f"resumed from {last_ckpt} after epoch {state['epoch']}")

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(exp_dir / "tb"))
    from tqdm import tqdm

    smoothing = get(config, "train.label_smoothing", 0.0)
    clip = get(config, "train.grad_clip", 10.0)
    aux_weight = get(config, "train.aux_loss_weight", 1.0)
    eval_every = get(config, "train.eval_every", 1)
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
        loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler, drop_last=True,
                            num_workers=workers)
        transform, eval_transform = batch_transforms(config, generator)
        model.train()
        losses, aux_losses, correct, seen = [], [], 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (main and options.progress), leave=False)
        for points, labels in bar:
            start = time.perf_counter()
            points, labels = transform(points.to(device)), labels.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits = train_model(points)
                loss = smoothed_cross_entropy(logits.float(), labels, smoothing)
                aux = model.aux_loss()
                total_loss = loss + aux_weight * aux
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total_loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
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
        if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
            logits, labels = predict(model, test_set, eval_transform, device, per_rank_batch, workers, rank, world)
            metrics = compute_metrics(logits, labels, num_classes)
            record.update(test_acc=metrics["overall_acc"], test_mean_class_acc=metrics["mean_class_acc"])
            if not history.best or metrics["overall_acc"] > history.best["overall_acc"]:
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
            save_atomic({"epoch": epoch, "config": config, "peft": [c.to_dict() for c in model.peft_configs],
                         **_model_payload(model), "optimizer": optimizer.state_dict(),
                         "scheduler": schedule.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                         "history": history.epochs, "best": history.best, "last": history.last},
                        last_ckpt)
        barrier()
    if writer is not None:
        writer.close()
    finished = stop_at == epochs
    results = _results(config, options, model, history, step_times, finished, augmentation, trainable, total)
    if main:
        (exp_dir / "results.json").write_text(json.dumps(results, indent=2))
        LOG.info(f"results: {exp_dir / 'results.json'}")
    return results


def _save_best(model: PeftModel, exp_dir: Path) -> None:
    save_atomic({"peft": [c.to_dict() for c in model.peft_configs], **_model_payload(model)}, exp_dir / "ckpt-best.pth")
    if [c.method for c in model.peft_configs] != ["full"]:
        model.save_pretrained(exp_dir / "adapter-best")


def _results(config, options, model, history, step_times, finished, augmentation, trainable, total) -> dict:
    return {
        "dataset": config["dataset"].get("name"), "split": config["dataset"].get("split"),
        "synthetic": config["dataset"].get("name") == "SyntheticDemo",
        "modality": "images" if is_image_config(config) else "points",
        "npoints": None if is_image_config(config) else get(config, "dataset.npoints", 1024), "voting": False,
        "augmentation": "hflip" if is_image_config(config) and augmentation.get("hflip") else
        ("none" if is_image_config(config) else describe_augmentation(augmentation)), "seed": options.seed,
        "methods": [c.method for c in model.peft_configs], "pretrained": options.ckpts,
        "trainable_parameters": trainable, "total_parameters": total, "trainable_percent": 100 * trainable / total,
        "epochs_run": len(history.epochs), "finished": finished,
        "last": history.last or None, "best": history.best or None, "note": BEST_NOTE,
        "median_step_seconds": statistics.median(step_times) if step_times else None,
        "history": history.epochs,
    }


def load_for_test(config: dict, ckpts: str | None, adapter: str | None, device: torch.device) -> PeftModel:
    """Model for ``tools/test.py``: a pcpeft training checkpoint, an adapter folder on a pretrained backbone, or
    an official fine-tuned checkpoint."""
    spec = dict(config.get("model", {}))
    backbone = create_model(spec.pop("name", "point_mae"), **spec)
    if adapter:
        if ckpts:
            LOG.info(str(load_checkpoint(backbone, ckpts)))
        return PeftModel.from_pretrained(backbone, adapter).to(device)
    if ckpts is None:
        raise ValueError("tools/test.py needs --ckpts (a fine-tuned checkpoint) or --adapter")
    state = read_checkpoint_file(ckpts, weights_only=False)
    if isinstance(state, dict) and "peft" in state and state.get("model") is not None:
        raise ValueError(f"{ckpts} holds adapter weights only: pass the pretrained backbone with --ckpts and the "
                         f"adapter folder (adapter-best/) with --adapter")
    LOG.info(str(load_checkpoint_object(backbone, state, ckpts, strict=True)))
    return get_peft_model(backbone, "full").to(device)


def evaluate_run(config: dict, model: PeftModel, device: torch.device, vote: bool, times: int = 10,
                 seed: int = 0) -> dict:
    """Test accuracy of ``model`` on the recipe's test split, one pass or voting."""
    rank, world = init_distributed(device)
    test_set = build_dataset(config["dataset"], "test")
    npoints = get(config, "dataset.npoints", 1024)
    batch = get(config, "test.batch_size", get(config, "train.batch_size", 32))
    if vote and is_image_config(config):
        raise ValueError("voting re-samples point clouds; it does not apply to image datasets")
    if vote:
        logits, labels = predict_vote(model, test_set, npoints, device, times, batch, seed, rank=rank, world=world)
    else:
        logits, labels = predict(model, test_set, batch_transforms(config, torch.Generator())[1], device, batch,
                                 rank=rank, world=world)
    metrics = compute_metrics(logits, labels, config["model"]["num_classes"])
    return {"dataset": config["dataset"].get("name"), "split": config["dataset"].get("split"), "npoints": npoints,
            "voting": vote, "vote_times": times if vote else None, **metrics}


__all__ = ["RunOptions", "build_model", "train", "load_for_test", "evaluate_run", "smoothed_cross_entropy"]
