"""An independent restatement of the official Point-MAE part-segmentation model, for tests.

Restates ``get_model(cls_dim)`` of Pang-Yatian/Point-MAE ``segmentation/models/pt.py`` (with the feature
propagation of ``segmentation/models/pointnet2_utils.py``), sharing no code with ``pcpeft``. The module names are
the official ones, so ``RefPartSeg(...).state_dict()`` *is* an official fine-tuned segmentation state dict (what
``segmentation/main.py`` saves under ``model_state_dict``; no ``module.`` prefix, it trains without DataParallel).

Facts restated (official sizes in brackets; here they are arguments so tests can run tiny):

* grouping: FPS starting at index 0 ``num_group`` [128] centres, kNN ``group_size`` [32] neighbours relative to
  their centre. The official FPS is the ``pointnet2_ops`` CUDA kernel, which never picks a point with
  ``|p|^2 <= 1e-3`` after the first centre; :func:`official_group` keeps that rule (``exclude_near_origin``).
* ``encoder``: the Point-MAE mini-PointNet to ``trans_dim`` [384] (no ``reduce_dim``, no cls token / cls pos).
* ``pos_embed``: Linear(3,128) GELU Linear(128, trans_dim) of the centres, added before EVERY block.
* ``blocks.blocks.i`` [12]: pre-norm blocks, qkv without bias, MLP ratio 4, drop path ``linspace(0, 0.1, depth)``.
* the outputs of the blocks in ``fetch_layers`` [3, 7, 11] each go through the ONE shared ``norm`` and are
  concatenated on channels: L * trans_dim [1152] per centre.
* global feature per cloud: max and mean over the centres of that (2 * L * trans_dim) and ``label_conv`` of the
  one-hot category (Conv1d(16, 64, no bias) BN LeakyReLU(0.2)) [64], repeated over the N points.
* ``propagation_0``: per point the three nearest centres by squared distance (computed, as officially, as
  ``|a|^2 + |b|^2 - 2 a.b``), weights ``1 / (d2 + 1e-8)`` normalised to sum 1, the interpolated centre features
  concatenated AFTER the point's own xyz (in_channel L * trans_dim + 3 [1155]), then Conv1d-BN-ReLU per layer of
  mlp [4 * trans_dim, 1024] (the 1024 is a literal, not a function of trans_dim).
* head: concat [propagated 1024, global] -> ``convs1`` (1024 + 2 * L * trans_dim + 64 [3392] -> 512) ``bns1`` ReLU
  Dropout(0.5) ``convs2`` (512 -> 256) ``bns2`` ReLU ``convs3`` (256 -> parts) ; log_softmax over parts; (B, N, P).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.references.impl import RefAttention, RefEncoder, RefMlp

#: official full-size model with 50 parts: parameters and state-dict entries (tensors incl. BN buffers)
OFFICIAL_PARAMS = 27_063_730
OFFICIAL_STATE_ENTRIES = 192
NEAR_ORIGIN_SQ = 1e-3


def official_fps(cloud: np.ndarray, count: int, exclude_near_origin: bool = True) -> np.ndarray:
    """FPS on one float32 cloud (N, 3) the way the pointnet2_ops kernel does it: index 0 first, then the argmax
    (lowest index on ties) of the running min squared distance, points with |p|^2 <= 1e-3 never candidates."""
    cloud = cloud.astype(np.float32)
    x, y, z = cloud[:, 0], cloud[:, 1], cloud[:, 2]
    candidate = np.ones(len(cloud), bool)
    if exclude_near_origin:
        candidate = (x * x + y * y + z * z) > np.float32(NEAR_ORIGIN_SQ)
    running = np.full(len(cloud), 1e10, dtype=np.float32)
    picked = [0]
    for _ in range(count - 1):
        last = cloud[picked[-1]]
        d = (x - last[0]) * (x - last[0]) + (y - last[1]) * (y - last[1]) + (z - last[2]) * (z - last[2])
        running = np.where(candidate, np.minimum(running, d), running)
        score = np.where(candidate, running, np.float32(-1))
        picked.append(int(np.argmax(score)) if candidate.any() else 0)
    return np.asarray(picked)


def official_group(points: torch.Tensor, num_group: int, group_size: int,
                   exclude_near_origin: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 3) -> neighbourhoods (B, G, M, 3) relative to their centre, centres (B, G, 3); one cloud at a time."""
    neigh, centres = [], []
    for cloud in points.detach().numpy().astype(np.float32):
        centre = cloud[official_fps(cloud, num_group, exclude_near_origin)]
        diff = centre[:, None, :] - cloud[None, :, :]
        d2 = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2
        nearest = np.argsort(d2, axis=1, kind="stable")[:, :group_size]
        neigh.append(cloud[nearest] - centre[:, None, :])
        centres.append(centre)
    return torch.from_numpy(np.stack(neigh)), torch.from_numpy(np.stack(centres))


class RefDropPath(nn.Module):
    """Per-sample stochastic depth (timm DropPath): zero a sample's branch with probability p, else scale 1/(1-p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class RefSegBlock(nn.Module):
    def __init__(self, d: int, heads: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = RefAttention(d, heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = RefMlp(d, 4 * d)
        self.drop_path = RefDropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RefSegTransformer(nn.Module):
    """``blocks``: returns the outputs of the blocks listed in ``fetch`` (pos added before every block)."""

    def __init__(self, d: int, depth: int, heads: int, fetch: tuple[int, ...], drop_path_rate: float) -> None:
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([RefSegBlock(d, heads, rates[i]) for i in range(depth)])
        self.fetch = tuple(fetch)

    def forward(self, x, pos):
        kept = []
        for i, block in enumerate(self.blocks):
            x = block(x + pos)
            if i in self.fetch:
                kept.append(x)
        return kept


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, 3), (B, S, 3) -> (B, N, S) in the official expanded form |a|^2 + |b|^2 - 2 a.b."""
    return (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2.0 * torch.einsum("bnc,bsc->bns", a, b)


class RefPropagation(nn.Module):
    """``PointNetFeaturePropagation``: inverse-squared-distance interpolation from 3 centres, then conv-BN-ReLU."""

    def __init__(self, in_channel: int, widths: list[int]) -> None:
        super().__init__()
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        last = in_channel
        for width in widths:
            self.mlp_convs.append(nn.Conv1d(last, width, 1))
            self.mlp_bns.append(nn.BatchNorm1d(width))
            last = width

    def forward(self, xyz: torch.Tensor, centres: torch.Tensor, own: torch.Tensor, centre_feats: torch.Tensor):
        """xyz (B, N, 3), centres (B, S, 3), own (B, D1, N), centre_feats (B, D2, S) -> (B, widths[-1], N)."""
        b, n, _ = xyz.shape
        s = centres.shape[1]
        feats = centre_feats.transpose(1, 2)  # (B, S, D2)
        if s == 1:
            interp = feats.expand(b, n, feats.shape[-1])
        else:
            d2, idx = torch.sort(squared_distance(xyz, centres), dim=-1, stable=True)
            d2, idx = d2[..., :3], idx[..., :3]
            recip = 1.0 / (d2 + 1e-8)
            weight = recip / recip.sum(-1, keepdim=True)  # (B, N, 3)
            picked = torch.stack([feats[i][idx[i]] for i in range(b)])  # (B, N, 3, D2)
            interp = (picked * weight[..., None]).sum(2)
        x = torch.cat([own.transpose(1, 2), interp], dim=-1).transpose(1, 2)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = torch.relu(bn(conv(x)))
        return x


class RefPartSeg(nn.Module):
    """The official ``get_model(num_parts)``; defaults are the official sizes."""

    def __init__(self, num_parts: int = 50, num_categories: int = 16, trans_dim: int = 384, depth: int = 12,
                 num_heads: int = 6, num_group: int = 128, group_size: int = 32,
                 fetch_layers: tuple[int, ...] = (3, 7, 11), drop_path_rate: float = 0.1,
                 exclude_near_origin: bool = True) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size
        self.num_categories, self.exclude_near_origin = num_categories, exclude_near_origin
        fetched = len(fetch_layers) * trans_dim
        self.encoder = RefEncoder(trans_dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, trans_dim))
        self.blocks = RefSegTransformer(trans_dim, depth, num_heads, fetch_layers, drop_path_rate)
        self.norm = nn.LayerNorm(trans_dim)
        self.label_conv = nn.Sequential(nn.Conv1d(num_categories, 64, 1, bias=False), nn.BatchNorm1d(64),
                                        nn.LeakyReLU(0.2))
        self.propagation_0 = RefPropagation(fetched + 3, [4 * trans_dim, 1024])
        self.convs1 = nn.Conv1d(1024 + 2 * fetched + 64, 512, 1)
        self.dp1 = nn.Dropout(0.5)
        self.convs2 = nn.Conv1d(512, 256, 1)
        self.convs3 = nn.Conv1d(256, num_parts, 1)
        self.bns1 = nn.BatchNorm1d(512)
        self.bns2 = nn.BatchNorm1d(256)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors a Point-MAE pre-training file holds for this model (under ``MAE_encoder.``)."""
        return {k: v for k, v in self.state_dict().items() if k.split(".")[0] in ("encoder", "pos_embed", "blocks",
                                                                                   "norm")}

    def forward(self, pts: torch.Tensor, category_one_hot: torch.Tensor) -> torch.Tensor:
        """pts (B, 3, N), category one-hot (B, 1, 16) -> (B, N, parts) log-probabilities."""
        b, _, n = pts.shape
        xyz = pts.transpose(1, 2)
        neigh, centres = official_group(xyz, self.num_group, self.group_size, self.exclude_near_origin)
        fetched = self.blocks(self.encoder(neigh), self.pos_embed(centres))
        feats = torch.cat([self.norm(f).transpose(1, 2) for f in fetched], dim=1)  # (B, L*C, G)
        label = self.label_conv(category_one_hot.reshape(b, self.num_categories, 1))
        glob = torch.cat([feats.max(dim=2)[0][:, :, None], feats.mean(dim=2)[:, :, None], label], dim=1)
        point_feats = self.propagation_0(xyz, centres, pts, feats)
        x = torch.cat([point_feats, glob.expand(-1, -1, n)], dim=1)
        x = self.dp1(torch.relu(self.bns1(self.convs1(x))))
        x = torch.relu(self.bns2(self.convs2(x)))
        return torch.log_softmax(self.convs3(x), dim=1).transpose(1, 2)


def randomise_partseg(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere, by module type: norm affine ~1 +- 0.2, biases and BN means ~0.1, BN vars in
    [0.5, 1.5), weights ~ N(0, 1/fan_in); so wrong wiring (a swapped BN, an unused buffer) shows in the logits."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(t):
        return torch.randn(t.shape, generator=gen)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
                module.weight.copy_(1 + 0.2 * rnd(module.weight))
                module.bias.copy_(0.1 * rnd(module.bias))
                if isinstance(module, nn.BatchNorm1d):
                    module.running_mean.copy_(0.1 * rnd(module.running_mean))
                    module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
                    module.num_batches_tracked.fill_(7)
            elif isinstance(module, (nn.Linear, nn.Conv1d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(rnd(module.weight) / fan_in ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * rnd(module.bias))
    return model


def official_param_count(model: nn.Module | None = None) -> tuple[int, int]:
    """(parameters, state-dict entries) of ``model`` (default: the full-size official model with 50 parts)."""
    model = RefPartSeg() if model is None else model
    return sum(p.numel() for p in model.parameters()), len(model.state_dict())


def one_hot(category: torch.Tensor, num_categories: int = 16) -> torch.Tensor:
    """(B,) indices -> (B, 1, C) float one-hot, what the official ``to_categorical(label (B,1), 16)`` gives."""
    return torch.eye(num_categories)[category][:, None, :]
