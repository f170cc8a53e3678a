"""IDPT's prompt generator: a DGCNN over the patch tokens, treated as points in feature space.

Three EdgeConvs, each recomputing its kNN (k = 20, the token itself included) on the previous output: the edge
feature of token i and neighbour j is ``cat(x_j - x_i, x_i)`` (2C), then Conv2d(2C, C, 1, bias=False), BatchNorm2d,
LeakyReLU(0.2), max over the k neighbours. ``cat`` of the three outputs (3C) -> Conv1d(3C, C, 1, bias=False),
BatchNorm1d, LeakyReLU(0.2), max over the tokens: one prompt token.

The kNN ranks ``-|x_i|^2 + 2 x_i.x_j - |x_j|^2`` evaluated in the official order of operations, so near-ties pick
the same neighbours. Module names (``conv{1,2,3,5}.{0,1}``) are the official ones; the official code registers
each BatchNorm a second time as ``bn{1,2,3,5}`` (see :class:`pcpeft.peft.prompts.IDPTConfig`).
"""
from __future__ import annotations

import torch
from torch import nn


def feature_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """x (B, C, N) -> indices (B, N, k) of the k largest negative squared distances."""
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    squares = torch.sum(x ** 2, dim=1, keepdim=True)
    negative_distance = -squares - inner - squares.transpose(2, 1)
    return negative_distance.topk(k=k, dim=-1)[1]


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """x (B, C, N) -> cat(x_j - x_i, x_i) over each token's k neighbours (B, 2C, N, k)."""
    batch, channels, count = x.shape
    index = feature_knn(x, k)
    points = x.transpose(2, 1)  # (B, N, C)
    neighbours = torch.gather(points.unsqueeze(1).expand(batch, count, count, channels), 2,
                              index.unsqueeze(-1).expand(batch, count, k, channels))  # (B, N, k, C)
    centre = points.unsqueeze(2).expand(batch, count, k, channels)
    return torch.cat([neighbours - centre, centre], dim=3).permute(0, 3, 1, 2)


def _edge_conv(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2 * dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.LeakyReLU(0.2))


class DGCNNPromptGenerator(nn.Module):
    """Patch tokens (B, N, C) -> one prompt token (B, 1, C)."""

    def __init__(self, dim: int, k: int = 20) -> None:
        super().__init__()
        self.k = k
        self.conv1, self.conv2, self.conv3 = _edge_conv(dim), _edge_conv(dim), _edge_conv(dim)
        self.conv5 = nn.Sequential(nn.Conv1d(3 * dim, dim, 1, bias=False), nn.BatchNorm1d(dim), nn.LeakyReLU(0.2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens.transpose(1, 2)  # (B, C, N)
        outputs = []
        for conv in (self.conv1, self.conv2, self.conv3):
            x = conv(edge_features(x, min(self.k, x.shape[-1]))).max(dim=-1).values
            outputs.append(x)
        x = self.conv5(torch.cat(outputs, dim=1))
        return x.max(dim=-1).values.unsqueeze(1)
