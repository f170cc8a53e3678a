"""Point-MAE pre-training loop on any of our datasets (labels unused); writes the official pre-training layout.

Like fine-tuning, every random draw of epoch e is seeded from (seed, e), the checkpoint is written atomically
after every epoch, and ``resume=True`` continues from it bit-identically on CPU. The output folder is claimed
like a fine-tuning run folder (:class:`RunFolder`): a folder holding a pre-training is never reused silently.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from ..datasets.transforms import RandomSubsetOfFPS, ScaleAndTranslate
from ..models.point_mae_pretrain import PointMAEPretrainModel
from .checkpointing import load_training_state, save_atomic
from .config import ConfigError, save_config
from .data import build_dataset
from .optim import CosineWarmupSchedule, build_optimizer
from .run_folder import RunFolder
from .schema import validate_recipe
from .seeding import epoch_seed, seed_everything

LOG = logging.getLogger("pcpeft")


def pretrain(config: dict, out_dir: str | Path, seed: int = 0, device: str = "cpu", progress: bool = True,
             resume: bool = False, overwrite: bool = False, stop_after_epochs: int | None = None) -> Path:
    """Pre-train per ``config`` (sections model, pretrain, dataset, optimizer, scheduler, train) and return the
    path of ``ckpt-last.pth`` ({'base_model': MAE state dict, 'epoch': ...}), loadable with ``--ckpts``.

    ``resume`` continues the run in ``out_dir`` (same seed and model required); ``overwrite`` moves a previous
    one aside; ``stop_after_epochs`` ends this call early (a job time limit)."""
    settings = validate_recipe(config, "pre-training recipe", task="pretrain")
    out_dir = Path(out_dir)
    with RunFolder(out_dir, resume, overwrite):
        return _pretrain(settings, config, out_dir, seed, device, progress, resume, stop_after_epochs)


def _pretrain(settings, config, out_dir: Path, seed: int, device: str, progress: bool, resume: bool,
              stop_after_epochs: int | None) -> Path:
    from tqdm import tqdm

    from ..progress import shown

    dev = torch.device(device)
    seed_everything(seed)
    model_cfg = settings.model
    model = PointMAEPretrainModel(
        trans_dim=model_cfg.get("trans_dim", 384), depth=model_cfg.get("depth", 12),
        num_heads=model_cfg.get("num_heads", 6), num_group=model_cfg.get("num_group", 64),
        group_size=model_cfg.get("group_size", 32), mask_ratio=settings.pretrain.mask_ratio,
        decoder_depth=settings.pretrain.decoder_depth,
        decoder_num_heads=settings.pretrain.decoder_num_heads or model_cfg.get("num_heads", 6),
        drop_path_rate=model_cfg.get("drop_path_rate", 0.1)).to(dev)
    dataset = build_dataset(settings.dataset_spec, "train", seed=seed)
    npoints = settings.dataset_spec["npoints"]
    epochs = settings.scheduler.epochs
    batch = settings.train.batch_size
    if settings.train.drop_last and batch > len(dataset):
        raise ConfigError(f"train.batch_size {batch} is larger than the pre-training set ({len(dataset)} clouds): "
                          f"lower it, or set train.drop_last: false")
    optimizer = build_optimizer(model, settings.optimizer.lr, settings.optimizer.weight_decay)
    schedule = CosineWarmupSchedule(optimizer, epochs, settings.scheduler.warmup_epochs, settings.scheduler.warmup_lr,
                                    settings.scheduler.min_lr)
    path = out_dir / "ckpt-last.pth"
    start_epoch = 0
    if resume:
        state = load_training_state(path)
        if state.get("seed", seed) != seed:
            raise ConfigError(f"--resume: {path} was started with --seed {state['seed']}, not {seed}")
        if state.get("config", {}).get("model") not in (None, config.get("model")):
            raise ConfigError(f"--resume: {path} was pre-trained with another model section "
                              f"({state['config']['model']} vs {config.get('model')})")
        model.load_state_dict(state["base_model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        LOG.info(f"resumed pre-training from {path} after epoch {state['epoch']}")
    else:
        save_config(config, out_dir / "config.yaml")
    stop_at = epochs if stop_after_epochs is None else min(epochs, start_epoch + stop_after_epochs)
    for epoch in range(start_epoch, stop_at):
        schedule.step(epoch)
        generator = seed_everything(epoch_seed(seed, epoch))
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch, sampler=RandomSampler(dataset, generator=generator),
                            drop_last=settings.train.drop_last, num_workers=settings.train.num_workers)
        sample, augment = RandomSubsetOfFPS(npoints, generator=generator), ScaleAndTranslate(generator=generator)
        model.train()
        losses = []
        bar = tqdm(loader, desc=f"pretrain {epoch + 1}/{epochs}", disable=not shown(progress), leave=False)
        for points, _ in bar:
            loss = model(augment(sample(points.to(dev)[..., :3].contiguous())))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        LOG.info(f"pretrain epoch {epoch} lr={optimizer.param_groups[0]['lr']:.3g} "
                 f"chamfer_l2={sum(losses) / max(len(losses), 1):.5f}")
        save_atomic({"base_model": model.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(),
                     "loss": sum(losses) / max(len(losses), 1), "seed": seed, "config": config}, path)
    return path
