"""PointGST - point cloud graph spectral tuning (Liang et al., 2024), equal to the official code
(jerryfeng2003/PointGST, ``models/PointTransformer.py`` + ``models/PGST.py``).

Per forward, from the patch centres (:mod:`.graph_basis`): a global basis ``U`` (B, G, G) and, after a z-order
sort cut into groups of ``local`` (32), local bases (B, G/local, local, local).

Per block, an adapter (``gft_adapter``, rank 36) reads the stream after the attention residual (un-normalised) and
its output is added after the MLP residual (outside DropPath). On X (B, T, D):

* ``h = down(X)``; the patch rows of ``h`` *before* the activation form ``x`` (B, G, r); then ``h = SiLU(h)``;
* global: ``f = U @ x`` (**U, not Uᵀ**: the official comment says Uᵀ, the code and its released weights use U);
  ``f = f + SiLU(adapt1(norm_ly1(f)))``; ``g = Uᵀ @ f``;
* local: the same on the z-sorted rows with the local bases, the **same** ``adapt1`` and ``norm_ly2``, then
  unsorted;
* ``h[:, patches] = (g + local) + h[:, patches]``; output ``up(h)``.

``down`` xavier-uniform, ``up`` and ``adapt1`` zero-initialised (the output is 0 at init). Head: the backbone's.
Trained, as the official ``part: adapt``: names with ``adapt`` or ``cls``: 622,831 on Point-MAE with 15 classes.
Frozen BatchNorms keep updating their statistics in train mode, as in the official runner.

``basis="official"`` (default) reproduces the official ill-conditioned normalisation (logits agree to ~1e-3, not
1e-6: see :mod:`.graph_basis`); ``basis="stable"`` is the well-conditioned variant (weights trained with one do
not transfer exactly to the other). The basis depends on the whole batch (one normalisation scalar), as official.

Backbones: the centres are read from ``backbone.group_divider``'s output, which every point backbone gives in
token order (PointGPT's grouper returns its nearest-neighbour chain order; the official PointGST-on-PointGPT
code computes the bases from the centres in that same order). ReCon's blocks (global-token branch) are refused;
the official "PointGST on ReCon / ACT" is the Point-MAE architecture started from those pre-training files. On
the ViT the "centres" are the patch-grid positions (row, column, 0) scaled to [-1, 1]; ``local`` shrinks
to the largest divisor of the token count not above it (196 patches: 28).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method
from .graph_basis import BASES, local_split
from .official import OFFICIAL_CLS, StreamTap, tap_blocks


class SpectralBases(nn.Module):
    """Sequence hook computing the bases once per forward, before block 0, for the last G tokens."""

    def __init__(self, local: int, basis: str) -> None:
        super().__init__()
        self.local, self.basis_name = local, basis
        self.centres: torch.Tensor | None = None
        self.taps: list[StreamTap] = []
        self.current: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def record_centres(self, module: nn.Module, inputs, output) -> None:
        """Forward hook on the grouper: output = (neighbourhoods, centres (B, G, 3))."""
        self.centres = output[1]

    def _grid_centres(self, batch: int, count: int, like: torch.Tensor) -> torch.Tensor:
        side = int(round(count ** 0.5))
        if side * side != count:
            raise PeftError(f"pointgst on a token grid needs a square number of patch tokens, got {count}")
        axis = torch.linspace(-1, 1, side, device=like.device, dtype=like.dtype)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        grid = torch.stack([rows.flatten(), cols.flatten(), torch.zeros_like(rows.flatten())], dim=-1)
        return grid.unsqueeze(0).expand(batch, -1, -1)

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index == 0:
            centres = self.centres
            self.centres = None
            if centres is None:
                centres = self._grid_centres(x.shape[0], x.shape[1] - 1, x)
            local = max(d for d in range(1, self.local + 1) if centres.shape[1] % d == 0)
            basis = BASES[self.basis_name]
            self.current = (basis(centres), *local_split(centres, local, basis))
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index == len(self.taps) - 1:
            self.current = None
        return x + self.taps[index].take(), pos

    def num_added_tokens(self, depth: int) -> int:
        return 0


class SpectralAdapter(nn.Module):
    """PointGST's per-block adapter (official ``PCSA``). (B, T, D) -> (B, T, D); the last G rows are patches."""

    is_peft_layer = True

    def __init__(self, dim: int, rank: int, bases: SpectralBases) -> None:
        super().__init__()
        self.norm_ly1 = nn.LayerNorm(rank)
        self.norm_ly2 = nn.LayerNorm(rank)
        self.down = nn.Linear(dim, rank)
        self.up = nn.Linear(rank, dim)
        self.adapt1 = nn.Linear(rank, rank)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        for tensor in (self.up.weight, self.up.bias, self.adapt1.weight, self.adapt1.bias):
            nn.init.zeros_(tensor)
        object.__setattr__(self, "bases", bases)

    def _filter(self, f: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        return f + F.silu(self.adapt1(norm(f)))

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        if self.bases.current is None:
            raise PeftError("pointgst: the spectral bases were not computed in this forward")
        basis, order, inverse, sub = self.bases.current
        h = self.down(stream)
        groups = basis.shape[-1]
        x = h[:, -groups:]
        h = F.silu(h)
        rank = x.shape[-1]
        glob = basis.transpose(-2, -1) @ self._filter(basis @ x, self.norm_ly1)
        batch, count, size, _ = sub.shape
        part = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, rank)).reshape(batch, count, size, rank)
        part = sub.transpose(-2, -1) @ self._filter(sub @ part, self.norm_ly2)
        part = torch.gather(part.reshape(batch, groups, rank), 1, inverse.unsqueeze(-1).expand(-1, -1, rank))
        h = torch.cat([h[:, :-groups], (glob + part) + h[:, -groups:]], dim=1)
        return self.up(h)


@register_method
@dataclasses.dataclass
class PointGSTConfig(PeftConfig):
    """PointGST with the official defaults (rank 36, local groups of 32); ``basis`` "official" | "stable"."""

    method: ClassVar[str] = "pointgst"
    claims: ClassVar[frozenset[str]] = frozenset({"norm2 of every block (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("gft_adapter.",)

    rank: int = 36
    local: int = 32
    basis: str = "official"
    update_frozen_bn_stats: bool = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        if self.basis not in BASES:
            raise PeftError(f"pointgst basis must be one of {sorted(BASES)}, got {self.basis!r}")
        bases = SpectralBases(self.local, self.basis)
        host.peft_modules["pointgst"] = bases
        grouper = getattr(backbone, "group_divider", None)
        if grouper is not None:
            grouper.register_forward_hook(bases.record_centres)
        adapters = []
        for block in backbone_blocks(backbone):
            adapters.append(SpectralAdapter(backbone.embed_dim, self.rank, bases))
            block.gft_adapter = adapters[-1]  # the official name, in the block
        bases.taps = tap_blocks(backbone, "pointgst", lambda index: adapters[index])
        backbone.block_stack.add_sequence_hook(bases)
        return [OFFICIAL_CLS]

    def official_keys(self, host) -> dict[str, str]:
        return {}  # the adapters sit under the official names (``blocks.blocks.{i}.gft_adapter.*``)
