"""Point-MAE pre-training loop on any of our datasets (labels unused); writes the official pre-training layout."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from ..datasets.transforms import RandomSubsetOfFPS, ScaleAndTranslate
from ..models.point_mae_pretrain import PointMAEPretrainModel
from .checkpointing import save_atomic
from .config import get, save_config
from .data import build_dataset
from .optim import CosineWarmupSchedule, build_optimizer
from .trainer import epoch_seed, seed_everything

LOG = logging.getLogger("pcpeft")


def pretrain(config: dict, out_dir: str | Path, seed: int = 0, device: str = "cpu", progress: bool = True) -> Path:
    """Pre-train per ``config`` (sections model, pretrain, dataset, optimizer, scheduler, train) and return the
    path of ``ckpt-last.pth`` ({'base_model': MAE state dict, 'epoch': ...}), loadable with ``--ckpts``."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    dev = torch.device(device)
    seed_everything(seed)
    model_cfg = config.get("model", {})
    model = PointMAEPretrainModel(
        trans_dim=model_cfg.get("trans_dim", 384), depth=model_cfg.get("depth", 12),
        num_heads=model_cfg.get("num_heads", 6), num_group=model_cfg.get("num_group", 64),
        group_size=model_cfg.get("group_size", 32), mask_ratio=get(config, "pretrain.mask_ratio", 0.6),
        decoder_depth=get(config, "pretrain.decoder_depth", 4),
        decoder_num_heads=get(config, "pretrain.decoder_num_heads", model_cfg.get("num_heads", 6)),
        drop_path_rate=model_cfg.get("drop_path_rate", 0.1)).to(dev)
    dataset = build_dataset(config["dataset"], "train", seed=seed)
    npoints = get(config, "dataset.npoints", 1024)
    epochs = get(config, "scheduler.epochs", 300)
    optimizer = build_optimizer(model, get(config, "optimizer.lr", 1e-3), get(config, "optimizer.weight_decay", 0.05))
    schedule = CosineWarmupSchedule(optimizer, epochs, get(config, "scheduler.warmup_epochs", 10),
                                    get(config, "scheduler.warmup_lr", 1e-6), get(config, "scheduler.min_lr", 1e-6))
    batch = get(config, "train.batch_size", 128)
    path = out_dir / "ckpt-last.pth"
    for epoch in range(epochs):
        schedule.step(epoch)
        generator = seed_everything(epoch_seed(seed, epoch))
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch, sampler=RandomSampler(dataset, generator=generator),
                            drop_last=True, num_workers=get(config, "train.num_workers", 0))
        sample, augment = RandomSubsetOfFPS(npoints, generator=generator), ScaleAndTranslate(generator=generator)
        model.train()
        losses = []
        for points, _ in tqdm(loader, desc=f"pretrain {epoch + 1}/{epochs}", disable=not progress, leave=False):
            loss = model(augment(sample(points.to(dev)[..., :3].contiguous())))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        LOG.info(f"pretrain epoch {epoch} lr={optimizer.param_groups[0]['lr']:.3g} "
                 f"chamfer_l2={sum(losses) / max(len(losses), 1):.5f}")
        save_atomic({"base_model": model.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(),
                     "loss": sum(losses) / max(len(losses), 1)}, path)
    return path
