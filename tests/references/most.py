"""Independent restatement of the official MoST fine-tuning model (xhanxu/MoST ``models/PointGPT_MoST.py``
``PointTransformer`` with ``models/GPT_MoST.py`` and ``models/structured/modules``), for tests.

Written from the facts read off the official code (the MoST section of the reference facts on the newest
methods), sharing no code with ``pcpeft.peft``: sequence-first ``nn.MultiheadAttention`` with a bool causal mask,
the official module names (so the state dict *is* an official fine-tune state dict, 648 entries at PointGPT-L's
size), the smoothing graph from a full stable sort of explicit squared differences, the Monarch map as an explicit
dense product ``Pᵀ·BD(blkdiag2)·P·BD(blkdiag1)``, the smoother with the official flat ``b·G`` neighbour indices, and
the adaptive bias on the sequence-first attention output. Only the grouping's FPS and kNN come from
:mod:`pcpeft.ops`.

``RefMoST(classes, num_group, group_size, dim, depth, heads, decoder_depth, nblocks, fusion, large)``:
``forward(points)`` -> ``(logits, generator Chamfer-L1 + Chamfer-L2)``. The fused layers are
``range(depth - 1, 0, -(depth // fusion))`` (official: ``range(23, 0, -24 // 3)``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pcpeft.ops import farthest_point_sample, knn_indices

EPS_IDW = 0.05
EPS_RMS = 1e-6


# -- grouping, tokenizer, positions --------------------------------------------------------------------------------
def chain_order(centres: torch.Tensor) -> torch.Tensor:
    """Greedy nearest-neighbour chain from centre 0 per cloud (argmin, first index on ties). (B, G, 3) -> (B, G)."""
    orders = []
    for cloud in centres:
        dist = torch.cdist(cloud, cloud)
        dist.fill_diagonal_(float("inf"))
        dist[:, 0] = float("inf")
        order = [0]
        for _ in range(cloud.shape[0] - 1):
            nxt = int(torch.argmin(dist[order[-1]]))
            order.append(nxt)
            dist[:, nxt] = float("inf")
        orders.append(torch.tensor(order))
    return torch.stack(orders)


def group(points: torch.Tensor, num_group: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``Group``: FPS centres, kNN neighbourhoods made relative, both in chain order.
    (B, N, 3) -> (B, G, M, 3), (B, G, 3)."""
    rows = torch.arange(points.shape[0]).unsqueeze(1)
    centres = points[rows, farthest_point_sample(points, num_group)]
    idx = knn_indices(points, centres, group_size)
    neighbourhoods = points[rows.unsqueeze(2), idx] - centres.unsqueeze(2)
    order = chain_order(centres)
    return neighbourhoods[rows, order], centres[rows, order]


class Encoder(nn.Module):
    """``Encoder_small`` (first_conv 3-128-256, second 512-512-C) or ``Encoder_large`` (3-256-512-1024,
    2048-2048-C). (B, G, M, 3) -> (B, G, C)."""

    def __init__(self, channels: int, large: bool) -> None:
        super().__init__()
        self.channels = channels
        if large:
            self.first_conv = nn.Sequential(nn.Conv1d(3, 256, 1), nn.BatchNorm1d(256), nn.ReLU(),
                                            nn.Conv1d(256, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                            nn.Conv1d(512, 1024, 1))
            width = 2048
        else:
            self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
                                            nn.Conv1d(128, 256, 1))
            width = 512
        self.second_conv = nn.Sequential(nn.Conv1d(width, width, 1), nn.BatchNorm1d(width), nn.ReLU(),
                                         nn.Conv1d(width, channels, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, m, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, m, 3).transpose(2, 1))
        f = torch.cat([f.max(dim=2, keepdim=True)[0].expand(-1, -1, m), f], dim=1)
        return self.second_conv(f).max(dim=2)[0].reshape(b, g, self.channels)


def sine(xyz: torch.Tensor, dim: int) -> torch.Tensor:
    """``PositionEmbeddingCoordsSine(3, dim, temperature=1)``: per coordinate F = dim//3//2*2 features, sin at
    even and cos at odd positions of 2 pi x, coordinates concatenated, zero padding. (..., 3) -> (..., dim)."""
    feats = dim // 3 // 2 * 2
    angle = (xyz * 2 * math.pi).unsqueeze(-1).expand(*xyz.shape, feats)  # (..., 3, F)
    enc = torch.stack([angle[..., 0::2].sin(), angle[..., 1::2].cos()], dim=-1).reshape(*xyz.shape[:-1], -1)
    return torch.cat([enc, enc.new_zeros(*enc.shape[:-1], dim - enc.shape[-1])], dim=-1)


# -- PointMonarch ----------------------------------------------------------------------------------------------------
def smoothing_graph(centres: torch.Tensor, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``K_Smooth_Matching``: the k+1 nearest centres by squared differences (stable: lower index on ties), the
    first dropped, Euclidean distances. (B, G, 3) -> distance (B, G, k), flat index (B*G*k,) with offset b*G."""
    diff = centres[:, :, None, :] - centres[:, None, :, :]
    squared = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2
    order = torch.sort(squared, dim=-1, stable=True)
    distance, idx = order.values[..., 1:k + 1].sqrt(), order.indices[..., 1:k + 1]
    offset = torch.arange(centres.shape[0]).view(-1, 1, 1) * centres.shape[1]
    return distance, (idx + offset).reshape(-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        return (y / torch.sqrt((y * y).mean(-1, keepdim=True) + EPS_RMS)).to(x.dtype) * self.weight


class KRectify(nn.Module):
    """f (B, L, C) batch-first, rf (L, B, C) sequence-first -> (B, L, C); the first L - G rows pass unchanged."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.knorm = RMSNorm(dim)
        self.ln = nn.LayerNorm(dim)  # never used

    def forward(self, f: torch.Tensor, distance: torch.Tensor, idx: torch.Tensor, rf: torch.Tensor) -> torch.Tensor:
        b, g, k = distance.shape
        t = f.shape[1] - g
        kept, f, rf = f[:, :t], f[:, t:], rf[t:]
        c = rf.mean(dim=1).unsqueeze(0) + rf.mean(dim=0).unsqueeze(1)  # (1, G, C) + (B, 1, C)
        nf = f.reshape(b * g, -1)[idx].reshape(b, g, k, -1) - f.unsqueeze(2)
        w = 1.0 / (distance + EPS_IDW)
        w = w / w.sum(-1, keepdim=True)
        s = (w.unsqueeze(-1) * nf).sum(2)
        return torch.cat([kept, (c + f) + self.knorm(s)], dim=1)


def monarch_dense(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """M = P2 · BD(b2) · P1 · BD(b1), with u (block-contiguous), z_l[r] = u[l_count·r + l], y[l_count·s + l] =
    v_l[s]. b1 (k, q, p), b2 (l, s, r) -> (l·s, k·p)."""
    k, q, p = b1.shape
    count, s, r = b2.shape
    p1 = torch.zeros(count * r, k * q)
    for li in range(count):
        for ri in range(r):
            p1[li * r + ri, ri * count + li] = 1
    p2 = torch.zeros(s * count, count * s)
    for li in range(count):
        for si in range(s):
            p2[si * count + li, li * s + si] = 1
    return p2 @ torch.block_diag(*b2) @ p1 @ torch.block_diag(*b1)


class MonarchLinear(nn.Module):
    def __init__(self, dim: int, nblocks: int) -> None:
        super().__init__()
        size = dim // nblocks
        self.bias = nn.Parameter(torch.zeros(dim))
        self.blkdiag1 = nn.Parameter(torch.zeros(nblocks, size, size))
        self.blkdiag2 = nn.Parameter(torch.zeros(nblocks, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ monarch_dense(self.blkdiag1, self.blkdiag2).t() + self.bias


class PointMonarch(nn.Module):
    def __init__(self, dim: int, nblocks: int) -> None:
        super().__init__()
        self.spatial_smooth_in = KRectify(dim)
        self.spatial_smooth_out = KRectify(dim)
        self.monarch_linear = MonarchLinear(dim, nblocks)

    def forward(self, x: torch.Tensor, distance: torch.Tensor, idx: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x, a (L, B, C) sequence-first -> o + a (L, B, C)."""
        s = self.spatial_smooth_in(x.transpose(0, 1), distance, idx, a)
        o = self.spatial_smooth_out(self.monarch_linear(s), distance, idx, a)
        return o.transpose(0, 1) + a


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, nblocks: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.point_monarch = PointMonarch(dim, nblocks)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, distance: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        x = self.ln_1(h)
        a = self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        x = x + self.point_monarch(x, distance, idx, a)
        return x + self.mlp(self.ln_2(x))


def causal(length: int) -> torch.Tensor:
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)


# -- the model --------------------------------------------------------------------------------------------------------
class Extractor(nn.Module):
    def __init__(self, dim: int, heads: int, depth: int, classes: int, group_size: int, nblocks: int) -> None:
        super().__init__()
        self.sos = nn.Parameter(torch.randn(dim))
        self.layers = nn.ModuleList([Block(dim, heads, nblocks) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(dim)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(2 * dim, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, classes))
        self.cls_norm = nn.LayerNorm(dim)
        self.cls_token_norm = nn.LayerNorm(dim)


class Generator(nn.Module):
    def __init__(self, dim: int, heads: int, depth: int, group_size: int, nblocks: int) -> None:
        super().__init__()
        self.sos = nn.Parameter(torch.randn(dim))
        self.layers = nn.ModuleList([Block(dim, heads, nblocks) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(dim)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))


def chamfer(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Chamfer-L1 + Chamfer-L2 (nearest squared distances both ways)."""
    sq = ((pred[:, :, None] - target[:, None]) ** 2).sum(-1)
    d1, d2 = sq.min(dim=2)[0], sq.min(dim=1)[0]
    return (d1.sqrt().mean() + d2.sqrt().mean()) / 2 + d1.mean() + d2.mean()


class RefMoST(nn.Module):
    """The official MoST ``PointTransformer``. forward(points (B, N, 3)) -> (logits (B, classes), aux loss)."""

    def __init__(self, classes: int, num_group: int, group_size: int, dim: int = 64, depth: int = 6, heads: int = 4,
                 decoder_depth: int = 2, nblocks: int = 8, fusion: int = 3, large: bool = True) -> None:
        super().__init__()
        self.num_group, self.group_size, self.dim = num_group, group_size, dim
        self.fetch = list(range(depth - 1, 0, -(depth // fusion)))
        self.encoder = Encoder(dim, large)
        self.blocks = Extractor(dim, heads, depth, classes, group_size, nblocks)
        self.generator_blocks = Generator(dim, heads, decoder_depth, group_size, nblocks)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.sos_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm = nn.LayerNorm(dim)

    def extract(self, tokens: torch.Tensor, centres: torch.Tensor, graph) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, G, C) -> (head input (B, 2C), ln_f output (B, G+2, C))."""
        b, g, d = tokens.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1).transpose(0, 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.sos_pos.expand(b, -1, -1), sine(centres, d)], 1)
        h = torch.cat([self.blocks.sos.expand(1, b, d), x], 0)
        pos, mask, features = pos.transpose(0, 1), causal(g + 2), []
        for i, layer in enumerate(self.blocks.layers):
            h = layer(h + pos, mask, *graph)
            if i in self.fetch:
                features.append(h)
        last = self.blocks.ln_f(features[-1]).transpose(0, 1)
        fused = None
        for i, f in enumerate(features):
            term = 2 ** i * (f[2:].max(0)[0] + f[2:].mean(0))
            fused = term if fused is None else fused + term
        fused = self.blocks.cls_token_norm(fused)
        normed = self.blocks.cls_norm(last)
        return torch.cat([normed[:, 1], normed[:, 2:].max(1)[0] + fused], -1), last

    def generate(self, last: torch.Tensor, neighbourhoods: torch.Tensor, centres: torch.Tensor, graph) -> torch.Tensor:
        b, g, d = centres.shape[0], centres.shape[1], self.dim
        h = torch.cat([last[:, :1], last[:, 2:-1]], 1).transpose(0, 1)
        step = centres[:, 1:] - centres[:, :-1]
        rel = torch.cat([centres[:, :1], step / torch.norm(step, dim=-1, keepdim=True)], 1)
        pos, mask = sine(rel, d).transpose(0, 1), causal(g)
        for layer in self.generator_blocks.layers:
            h = layer(h + pos, mask, *graph)
        h = self.generator_blocks.ln_f(h).permute(1, 2, 0)
        pred = self.generator_blocks.increase_dim(h).transpose(1, 2).reshape(b * g, -1, 3)
        target = (neighbourhoods + centres.unsqueeze(2)).reshape(b * g, -1, 3)
        return chamfer(pred, target)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neighbourhoods, centres = group(points, self.num_group, self.group_size)
        graph = smoothing_graph(centres)
        head_in, last = self.extract(self.encoder(neighbourhoods), centres, graph)
        logits = self.blocks.cls_head_finetune(head_in)
        return logits, self.generate(last, neighbourhoods, centres, graph)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-zero values in every floating tensor: norm gains near 1 and their biases small, other weights
    ~ N(0, 1/fan_in), the Monarch factors and the RMS gains non-zero, BatchNorm statistics positive."""
    gen = torch.Generator().manual_seed(seed)
    norms = {id(m.weight) for m in model.modules()
             if isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)) and m.weight is not None}
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif id(tensor) in norms:
                tensor.copy_(1 + 0.1 * noise)
            elif name.endswith("knorm.weight"):
                tensor.copy_(0.3 * noise)
            elif "blkdiag" in name:
                tensor.copy_(noise / math.sqrt(tensor.shape[-1]))
            elif tensor.dim() >= 2:
                tensor.copy_(noise / math.sqrt(tensor[0].numel()))
            else:
                tensor.copy_(0.1 * noise)
    return model
