"""Point-specific input layers: the mini-PointNet group tokenizer and the positional MLP of the centres."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MiniPointNet(nn.Module):
    """Point-MAE / Point-BERT ``Encoder``: one token per neighbourhood. (B, G, M, 3) -> (B, G, C).

    ``first_conv`` = Conv1d(3,128) BN ReLU Conv1d(128,256); max over the M points (256-d global);
    concat [global, per-point] (512); ``second_conv`` = Conv1d(512,512) BN ReLU Conv1d(512,C); max over points.
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Conv1d(512, out_channels, 1)
        )

    @staticmethod
    def _channels_last(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """Run a Conv1d(k=1)/BN/ReLU stack on (BG, M, C) without transposes: a kernel-1 conv is a matmul, and
        BatchNorm over (BG*M, C) has exactly the statistics of BatchNorm over (BG, C, M). ~25% faster on CPU."""
        for layer in layers:
            if isinstance(layer, nn.Conv1d):
                x = F.linear(x, layer.weight.squeeze(-1), layer.bias)
            elif isinstance(layer, nn.BatchNorm1d):
                x = layer(x.reshape(-1, x.shape[-1])).reshape(x.shape)
            else:
                x = layer(x)
        return x

    def forward(self, neighbourhoods: torch.Tensor) -> torch.Tensor:
        batch, groups, size, dims = neighbourhoods.shape
        if dims != 3:
            raise ValueError(f"MiniPointNet expects neighbourhoods (B, G, M, 3), got {tuple(neighbourhoods.shape)}")
        feat = self._channels_last(self.first_conv, neighbourhoods.reshape(batch * groups, size, 3))  # (BG, M, 256)
        glob = feat.max(dim=1, keepdim=True).values
        feat = torch.cat([glob.expand(-1, size, -1), feat], dim=2)  # (BG, M, 512)
        feat = self._channels_last(self.second_conv, feat)
        return feat.max(dim=1).values.reshape(batch, groups, self.out_channels)


class PositionalMLP(nn.Sequential):
    """Linear(3,128) GELU Linear(128,D) on the group centres (keys ``0.*`` and ``2.*``). (B, G, 3) -> (B, G, D)."""

    def __init__(self, dim: int, hidden: int = 128, in_dim: int = 3) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
