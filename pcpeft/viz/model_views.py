"""What a model does to a cloud, for pictures: SMoA expert choices per block and pooled features of a split."""
from __future__ import annotations

import numpy as np
import torch


def expert_choices(model, points: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Run one cloud (N, 3) through a PEFT model with SMoA; per block the grouped points (G*M, 3) and the expert of
    each point's group token (first channel head)."""
    if "smoa" not in model.peft_modules:
        raise ValueError("routing needs a model with SMoA (e.g. --peft adapter_x)")
    model.eval()
    with torch.no_grad():
        neigh, centres = model.base_model.group_divider(points[None])
        model(points[None])
    absolute = (neigh + centres.unsqueeze(2))[0].numpy()  # (G, M, 3)
    groups, size = absolute.shape[:2]
    grouped = absolute.reshape(-1, 3)
    experts = [np.repeat(choice[0, -groups:, 0].numpy(), size)  # the G point tokens are last in the sequence
               for choice in model.routing().values()]
    return [grouped] * len(experts), experts, model.peft_modules["smoa"].num_experts


def pooled_features(model, dataset, transform, limit: int = 600, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Head-input features (cls + max pooling) of up to ``limit`` samples."""
    feats, labels = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, min(limit, len(dataset)), batch):
            items = [dataset[i] for i in range(start, min(start + batch, limit, len(dataset)))]
            x = transform(torch.stack([it[0] for it in items]))
            feats.append(model.forward_head(model.forward_features(x), pre_logits=True).numpy())
            labels += [it[1] for it in items]
    return np.concatenate(feats), np.array(labels)
