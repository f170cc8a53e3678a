"""Point-MAE pre-training on any of our data sets (labels unused), through the one training loop
(:mod:`.loop`); writes the official pre-training layout (``base_model`` holds ``MAE_encoder.*``).

Like fine-tuning, every random draw of epoch e is seeded from (seed, e), the checkpoint is written atomically
after every epoch, and ``resume=True`` continues from it bit-identically on CPU. The output folder is claimed
like a fine-tuning run folder (:class:`RunFolder`): a folder holding a pre-training is never reused silently.
The model is ``create_model("point_mae_pretrain", ...)`` with the recipe's model section and its ``pretrain``
section; the learning rate follows the recipe's whole schedule (warm-up, cosine, ``cosine_epochs``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch

from ...datasets.transforms import RandomSubsetOfFPS, ScaleAndTranslate
from ...models.registry import create_model, model_options
from ..data import build_dataset
from ..recipe.schema import Settings, recipe_section, section_difference, validate_recipe
from ..recipe.yaml_io import ConfigError, save_config
from ..runs.folders import RunFolder
from ..runs.training_state import load_training_state
from .hooks import CheckpointHook, LogHook
from .loop import LoopData, TrainingLoop, plain_step
from .optim import CosineWarmupSchedule, build_optimizer
from .seeding import seed_everything
from .tasks import StepResult

LOG = logging.getLogger("pcpeft")
PRETRAIN_MODEL = "point_mae_pretrain"


class PretrainTask:
    """Masked-autoencoder batches: ``npoints`` random points of an FPS oversample, scaled and translated; the loss
    is the model's own (Chamfer-L2 of the masked groups)."""

    def __init__(self, npoints: int) -> None:
        self.npoints = npoints

    def transforms(self, generator: torch.Generator) -> tuple[Callable, None]:
        sample, augment = RandomSubsetOfFPS(self.npoints, generator=generator), ScaleAndTranslate(generator=generator)
        return (lambda points: augment(sample(points))), None

    def training_loss(self, model, batch, transform: Callable, device: torch.device) -> StepResult:
        points = batch[0]
        return StepResult(model(transform(points.to(device)[..., :3].contiguous())), 0, 0)


def pretrain(config: dict, out_dir: str | Path, seed: int = 0, device: str = "cpu", progress: bool = True,
             resume: bool = False, overwrite: bool = False, stop_after_epochs: int | None = None) -> Path:
    """Pre-train per ``config`` (sections model, pretrain, dataset, optimizer, scheduler, train) and return the
    path of ``ckpt-last.pth`` ({'base_model': MAE state dict, 'epoch': ...}), loadable with ``--ckpts``.

    ``resume`` continues the run in ``out_dir`` (same seed and model required); ``overwrite`` moves a previous
    one aside; ``stop_after_epochs`` ends this call early (a job time limit)."""
    settings = validate_recipe(config, "pre-training recipe", task="pretrain")
    out_dir = Path(out_dir)
    with RunFolder(out_dir, resume, overwrite):
        return _pretrain(settings, config, out_dir, seed, torch.device(device), progress, resume, stop_after_epochs)


def pretrain_model(settings: Settings) -> torch.nn.Module:
    """The masked autoencoder of the recipe: its model section's encoder options and its ``pretrain`` section."""
    section = settings.pretrain
    encoder = {key: settings.model[key] for key in model_options(PRETRAIN_MODEL) if key in settings.model}
    return create_model(PRETRAIN_MODEL, **encoder, mask_ratio=section.mask_ratio, decoder_depth=section.decoder_depth,
                        decoder_num_heads=section.decoder_num_heads)


def _restore(path: Path, model, optimizer, seed: int, config: dict) -> int:
    """Load ``ckpt-last.pth`` into the model and optimiser after checking seed and model; returns the next epoch."""
    state = load_training_state(path)
    if state.get("seed", seed) != seed:
        raise ConfigError(f"--resume: {path} was started with --seed {state['seed']}, not {seed}")
    saved_model, model_now = recipe_section(state.get("config"), "model"), recipe_section(config, "model")
    if saved_model and saved_model != model_now:
        raise ConfigError(f"--resume: {path} was pre-trained with another model section "
                          f"({section_difference(saved_model, model_now, 'model')})")
    model.load_state_dict(state["base_model"])
    optimizer.load_state_dict(state["optimizer"])
    LOG.info(f"resumed pre-training from {path} after epoch {state['epoch']}")
    return state["epoch"] + 1


def _pretrain_line(record: dict) -> str:
    return f"pretrain epoch {record['epoch']} lr={record['lr']:.3g} chamfer_l2={record['train_loss']:.5f}"


def _pretrain(settings: Settings, config: dict, out_dir: Path, seed: int, device: torch.device, progress: bool,
              resume: bool, stop_after_epochs: int | None) -> Path:
    seed_everything(seed)
    model = pretrain_model(settings).to(device)
    dataset = build_dataset(settings.dataset, "train", seed=seed)
    tcfg, sched, epochs = settings.train, settings.scheduler, settings.scheduler.epochs
    if tcfg.drop_last and tcfg.batch_size > len(dataset):
        raise ConfigError(f"train.batch_size {tcfg.batch_size} is larger than the pre-training set ({len(dataset)} "
                          f"clouds): lower it, or set train.drop_last: false")
    optimizer = build_optimizer(model, settings.optimizer.lr, settings.optimizer.weight_decay)
    schedule = CosineWarmupSchedule(optimizer, epochs, sched.warmup_epochs, sched.warmup_lr, sched.min_lr,
                                    sched.cosine_epochs)
    path = out_dir / "ckpt-last.pth"
    start = _restore(path, model, optimizer, seed, config) if resume else 0
    if not resume:
        save_config(config, out_dir / "config.yaml")

    def payload(loop: TrainingLoop, epoch: int, record: dict) -> dict:
        return {"base_model": loop.model.state_dict(), "epoch": epoch, "optimizer": loop.optimizer.state_dict(),
                "loss": record["train_loss"], "seed": seed, "config": config}

    hooks = [LogHook(_pretrain_line), CheckpointHook(path, payload)]
    loop = TrainingLoop(model, model, PretrainTask(settings.dataset.npoints), optimizer, schedule,
                        LoopData(dataset, tcfg.batch_size, tcfg.drop_last, tcfg.num_workers), plain_step(), device,
                        seed, epochs, hooks, progress=progress, desc="pretrain")
    loop.run(start, epochs if stop_after_epochs is None else min(epochs, start + stop_after_epochs))
    return path
