"""Point-MAE masked-autoencoder pre-training model, with the official pre-training state-dict layout.

Keys: ``MAE_encoder.{encoder,pos_embed,blocks.blocks.i,norm}.*`` (what fine-tuning loads), and the parts
fine-tuning drops: ``mask_token``, ``decoder_pos_embed.*``, ``MAE_decoder.{blocks.i,norm}.*``, ``increase_dim.0.*``.

Forward: group -> random masking of ``mask_ratio`` of the groups per cloud -> the encoder sees only visible
tokens (positional MLP added before every block) -> the light decoder sees visible + mask tokens -> the masked
groups' points are regressed by ``increase_dim`` and scored with Chamfer-L2 (mean squared nearest-neighbour
distance both ways, as Point-MAE's ChamferDistanceL2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..ops.grouping import PointGrouper
from .chamfer import chamfer_l2
from .point_tokenizer import MiniPointNet, PositionalMLP
from .point_transformer import _reference_init
from .registry import register_model
from .transformer import BlockStack, TransformerEncoder


class MaskedEncoder(nn.Module):
    """Point-MAE's ``MaskTransformer`` (no cls token): tokenizer, positional MLP, blocks, norm."""

    def __init__(self, trans_dim: int, depth: int, num_heads: int, drop_path_rate: float) -> None:
        super().__init__()
        self.encoder = MiniPointNet(trans_dim)
        self.pos_embed = PositionalMLP(trans_dim)
        self.blocks = TransformerEncoder(trans_dim, depth, num_heads, drop_path_rate=drop_path_rate)
        self.norm = nn.LayerNorm(trans_dim)

    def forward(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """neighbourhoods (B,G,M,3), centres (B,G,3), mask (B,G) True = hidden -> visible tokens (B, V, C)."""
        tokens = self.encoder(neighbourhoods)
        batch, _, dim = tokens.shape
        visible = tokens[~mask].reshape(batch, -1, dim)
        pos = self.pos_embed(centres[~mask].reshape(batch, -1, 3))
        return self.norm(self.blocks(visible, pos))


class MAEDecoder(nn.Module):
    """Light decoder; keys ``blocks.{i}.*`` and ``norm.*`` as Point-MAE's TransformerDecoder."""

    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.blocks = BlockStack(dim, depth, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, num_masked: int) -> torch.Tensor:
        return self.norm(self.blocks(x, pos)[:, -num_masked:])


class PointMAEPretrainModel(nn.Module):
    """``forward(points)`` -> Chamfer-L2 reconstruction loss of the masked groups (scalar)."""

    def __init__(self, trans_dim: int = 384, depth: int = 12, num_heads: int = 6, num_group: int = 64,
                 group_size: int = 32, mask_ratio: float = 0.6, decoder_depth: int = 4, decoder_num_heads: int = 6,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio, self.group_size = mask_ratio, group_size
        self.group_divider = PointGrouper(num_group, group_size)
        self.MAE_encoder = MaskedEncoder(trans_dim, depth, num_heads, drop_path_rate)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, trans_dim))
        self.decoder_pos_embed = PositionalMLP(trans_dim)
        self.MAE_decoder = MAEDecoder(trans_dim, decoder_depth, decoder_num_heads)
        self.increase_dim = nn.Sequential(nn.Conv1d(trans_dim, 3 * group_size, 1))
        self.apply(_reference_init)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def random_mask(self, batch: int, groups: int, device: torch.device) -> torch.Tensor:
        """(B, G) bool, exactly int(mask_ratio * G) True per row, drawn from torch's global RNG."""
        hidden = int(self.mask_ratio * groups)
        order = torch.rand(batch, groups).argsort(dim=1)
        return (order < hidden).to(device)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        neighbourhoods, centres = self.group_divider(points)
        batch, groups = centres.shape[:2]
        mask = self.random_mask(batch, groups, points.device)
        visible = self.MAE_encoder(neighbourhoods, centres, mask)
        dim = visible.shape[-1]
        pos_visible = self.decoder_pos_embed(centres[~mask]).reshape(batch, -1, dim)
        pos_masked = self.decoder_pos_embed(centres[mask]).reshape(batch, -1, dim)
        num_masked = pos_masked.shape[1]
        x = torch.cat([visible, self.mask_token.expand(batch, num_masked, -1)], dim=1)
        rebuilt = self.MAE_decoder(x, torch.cat([pos_visible, pos_masked], dim=1), num_masked)  # (B, Mk, C)
        pred = self.increase_dim(rebuilt.transpose(1, 2)).transpose(1, 2).reshape(batch * num_masked, -1, 3)
        target = neighbourhoods[mask].reshape(batch * num_masked, -1, 3)
        return chamfer_l2(pred, target)


@dataclass
class PointMAEPretrainConfig:
    """Point-MAE's masked autoencoder: the encoder (as the fine-tuning backbones'), the mask ratio and the decoder
    (its head count the encoder's unless ``decoder_num_heads`` is set)."""

    trans_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    num_group: int = 64
    group_size: int = 32
    drop_path_rate: float = 0.1
    mask_ratio: float = 0.6
    decoder_depth: int = 4
    decoder_num_heads: Optional[int] = None


@register_model("point_mae_pretrain")
def point_mae_pretrain(**overrides) -> PointMAEPretrainModel:
    """Point-MAE's masked autoencoder for pre-training (``forward(points)`` -> the Chamfer-L2 loss). Its
    ``MAE_encoder.*`` tensors are what the fine-tuning backbones load."""
    c = PointMAEPretrainConfig(**overrides)
    return PointMAEPretrainModel(c.trans_dim, c.depth, c.num_heads, c.num_group, c.group_size, c.mask_ratio,
                                 c.decoder_depth, c.decoder_num_heads or c.num_heads, c.drop_path_rate)


point_mae_pretrain.config_class = PointMAEPretrainConfig
