"""The layers of MoST's per-block adapter (``PointMonarch``): the Monarch linear map, the kNN smoother ``K_Rectify``
and the centre graph they share. Shapes and names follow the official code (xhanxu/MoST,
``models/structured/modules``); :mod:`.most` attaches them to a backbone.

* :class:`MonarchLinear` (C_in -> C_out, ``nblocks`` blocks): ``M = Pᵀ · BD(blkdiag2) · P · BD(blkdiag1)`` plus a
  bias. ``blkdiag1`` acts on contiguous chunks of the input, ``P`` interleaves (``z_l[r] = u[nblocks·r + l]``) and
  the output is interleaved back (``y[nblocks·s + l] = v_l[s]``). Inputs are zero-padded to a multiple of the
  block size and outputs truncated, as the official ``StructuredLinear``.
* :class:`KRectify`: on the last G tokens (the patches; earlier tokens pass unchanged)
  ``f_i + c_i + γ ⊙ rms(Σ_j w_ij (f_j - f_i))`` over the graph's k neighbours, with inverse-distance weights
  ``w_ij ∝ 1 / (d_ij + eps)`` and the parameter-free adaptive bias ``c`` of the attention output ``a``:
  ``c[b, i] = mean over the batch of a[·, i] + mean over the patches of a[b, ·]``. ``rms(v) = v / sqrt(mean(v²) +
  1e-6)`` in float32; γ is ``knorm.weight`` (zero-initialised). ``ln`` is built and never used, as official.
* :class:`PointMonarch`: ``o = K_out(Monarch(K_in(x, a)), a)``; returns ``o + a``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.grouping import gather_points
from ..ops.knn import knn_indices
from .base import PeftError

#: how the Monarch factors start: both zero (official), or blkdiag1 kaiming-uniform and blkdiag2 zero
FACTOR_INITS = ("zero", "kaiming_zero")


class CentreGraph(NamedTuple):
    """The smoothing graph of one forward: ``distance`` (B, G, k) Euclidean, ascending; ``index`` (B, G, k) int64
    into the G centres of the same cloud (the centre itself excluded)."""

    distance: torch.Tensor
    index: torch.Tensor


def centre_graph(centres: torch.Tensor, neighbours: int) -> CentreGraph:
    """kNN of the centres among themselves: (B, G, 3) -> :class:`CentreGraph` with k = ``neighbours``.

    As the official ``K_Smooth_Matching``: the k + 1 nearest (squared differences summed per coordinate, ties to
    the lower index, KNN_CUDA's order), the first column dropped, then the square root of the distances kept.
    Under tracing (ONNX export) the search is written in graph operations with the same arithmetic.
    """
    if centres.shape[1] <= neighbours:
        raise PeftError(f"most: {neighbours} smoothing neighbours need more than {neighbours} patch tokens, "
                        f"got {centres.shape[1]}")
    centres = centres.detach()
    if torch.jit.is_tracing():  # an export: the search as graph operations (same arithmetic and order)
        from ..export.graph_ops import knn_graph

        index = knn_graph(centres, centres, neighbours + 1)[..., 1:]
    else:
        index = knn_indices(centres, centres, neighbours + 1)[..., 1:]
    picked = gather_points(centres, index)  # (B, G, k, 3)
    diff = picked - centres.unsqueeze(2)
    squared = diff[..., 0] * diff[..., 0]
    for axis in range(1, centres.shape[-1]):
        squared = squared + diff[..., axis] * diff[..., axis]
    return CentreGraph(squared.sqrt(), index)


class RMSGain(nn.Module):
    """The official ``rmsnorm``: ``x / sqrt(mean(x², -1) + eps)`` in float32, times ``weight`` (zero-initialised).
    (..., C) -> (..., C)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def adaptive_bias(a: torch.Tensor, per_sample: bool = False) -> torch.Tensor:
    """The official ``adabias`` on the patch rows of the attention output. a (B, G, C) -> c (B, G, C):
    ``c[b, i] = mean_b' a[b', i] + mean_i' a[b, i']``. ``per_sample``: the first term as at batch 1 (``a[b, i]``)."""
    across = a if per_sample else a.mean(dim=0, keepdim=True)
    return across + a.mean(dim=1, keepdim=True)


class KRectify(nn.Module):
    """The official ``K_Rectify`` smoother (see the module docstring). f (B, L, C), a (B, L, C) -> (B, L, C)."""

    def __init__(self, dim: int, eps: float = 0.05) -> None:
        super().__init__()
        self.eps = eps
        self.knorm = RMSGain(dim)
        self.ln = nn.LayerNorm(dim)  # built and never used, as official (its two tensors are in the layout)

    def forward(self, f: torch.Tensor, a: torch.Tensor, graph: CentreGraph, per_sample: bool = False
                ) -> torch.Tensor:
        batch, groups, k = graph.index.shape
        prefix = f.shape[1] - groups
        if prefix < 0:
            raise PeftError(f"most: {f.shape[1]} tokens but a smoothing graph of {groups} patches")
        head, f = f[:, :prefix], f[:, prefix:]
        c = adaptive_bias(a[:, prefix:], per_sample)
        rows = torch.arange(batch, device=f.device).view(batch, 1, 1)
        neighbours = f[rows, graph.index]  # (B, G, k, C)
        diff = neighbours - f.unsqueeze(2)
        weights = 1.0 / (graph.distance + self.eps)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).unsqueeze(-1)
        smoothed = (weights * diff).sum(dim=2)
        out = (c + f) + self.knorm(smoothed)
        return torch.cat([head, out], dim=1) if prefix else out

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class MonarchLinear(nn.Module):
    """The official ``MonarchLinear`` (see the module docstring). (..., in_features) -> (..., out_features).

    ``blkdiag1`` (nblocks, b_out, b_in) and ``blkdiag2`` (nblocks, b_out, b_out) (or (nblocks, b_in, b_in) and
    (nblocks, b_out, b_in) when the padded input is narrower than the padded output), indexed (block, out, in).
    """

    def __init__(self, in_features: int, out_features: int, nblocks: int, bias: bool = True,
                 factor_init: str = "zero") -> None:
        super().__init__()
        if factor_init not in FACTOR_INITS:
            raise PeftError(f"most factor_init must be one of {FACTOR_INITS}, got {factor_init!r}")
        self.in_features, self.out_features, self.nblocks = in_features, out_features, nblocks
        in_block, out_block = math.ceil(in_features / nblocks), math.ceil(out_features / nblocks)
        self.in_extended, self.out_extended = in_block * nblocks, out_block * nblocks
        if self.in_extended < self.out_extended:
            first, second = (nblocks, in_block, in_block), (nblocks, out_block, in_block)
        else:
            first, second = (nblocks, out_block, in_block), (nblocks, out_block, out_block)
        self.blkdiag1 = nn.Parameter(torch.zeros(first))
        self.blkdiag2 = nn.Parameter(torch.zeros(second))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if factor_init == "kaiming_zero":  # kaiming-uniform(a=sqrt(5)) per block: bound 1/sqrt(fan_in)
            bound = 1.0 / math.sqrt(first[-1])
            nn.init.uniform_(self.blkdiag1, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        if x.shape[-1] < self.in_extended:
            x = F.pad(x, (0, self.in_extended - x.shape[-1]))
        blocks, q, p = self.blkdiag1.shape
        count, s, r = self.blkdiag2.shape
        u = torch.einsum("nkp,kqp->nkq", x.reshape(-1, blocks, p), self.blkdiag1)  # (N, k, q)
        z = u.reshape(-1, r, count).transpose(1, 2)  # (N, l, r): z[n, l, r] = u[n, r * count + l]
        v = torch.einsum("nlr,lsr->nls", z, self.blkdiag2)  # (N, l, s)
        y = v.transpose(1, 2).reshape(*shape, s * count)[..., :self.out_features]  # y[s * count + l] = v[l, s]
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense matrix (out_features, in_features)."""
        eye = torch.eye(self.in_features, device=self.blkdiag1.device, dtype=self.blkdiag1.dtype)
        out = self(eye)
        return (out if self.bias is None else out - self.bias).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nblocks={self.nblocks}"


class PointMonarch(nn.Module):
    """The official ``PointMonarch``: x (B, L, C) the attention's input, a (B, L, C) its output -> o + a."""

    def __init__(self, dim: int, nblocks: int = 8, eps: float = 0.05, factor_init: str = "zero") -> None:
        super().__init__()
        self.spatial_smooth_in = KRectify(dim, eps)
        self.spatial_smooth_out = KRectify(dim, eps)
        self.monarch_linear = MonarchLinear(dim, dim, nblocks, bias=True, factor_init=factor_init)

    def forward(self, x: torch.Tensor, a: torch.Tensor, graph: CentreGraph, per_sample: bool = False
                ) -> torch.Tensor:
        s = self.spatial_smooth_in(x, a, graph, per_sample)
        y = self.monarch_linear(s)
        return self.spatial_smooth_out(y, a, graph, per_sample) + a
