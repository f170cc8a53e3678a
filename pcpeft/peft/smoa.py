"""SMoA - Sharing Mixture of Adapters (Adapter-X, Li et al., 2024).

One pool of ``num_experts`` bottleneck adapters and one router, **shared by every block** (one set of weights
reused at every depth), placed parallel to each block's MLP on the same normalised input:
``x = x + MLP(LN2 x) + scale * SMoA(LN2 x)``.

Routing is per token and per channel head: a token (D) is split into ``heads`` chunks of D/heads channels, each
routed on its own and the outputs concatenated back. A chunk is projected to ``router_dim``, L2-normalised, and
scored by cosine similarity against ``num_experts`` L2-normalised learnable expert embeddings; scores / temperature
go through a softmax; the ``top_k`` experts are evaluated and weighted by their gate probability (not
renormalised). Experts are zero-initialised on their up projection, so the backbone output is unchanged at init.

The Switch-Transformer load-balancing loss ``num_experts * sum_e f_e * P_e`` (f_e: fraction of chunks whose top-1
is e, P_e: mean gate probability of e) is averaged over blocks, multiplied by ``balance_weight`` and returned by
``PeftModel.aux_loss()``; the expert chosen per token/head/block is kept in ``last_routing``.

Defaults (the paper does not publish them all; chosen so that the ``adapter_x`` preset on Point-MAE with 15
classes trains ~1.88% of the parameters): 8 experts, 2 heads (192-d chunks), bottleneck 40, router dim 32,
temperature 0.1, top-1, balance weight 0.01, scale 0.1, GELU.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method


class SharedMixtureOfAdapters(nn.Module):
    """The shared expert pool and router. (B, T, D) -> (B, T, D), plus routing bookkeeping per block."""

    def __init__(self, dim: int, num_experts: int = 8, heads: int = 2, bottleneck: int = 40, router_dim: int = 32,
                 temperature: float = 0.1, top_k: int = 1, balance_weight: float = 0.01) -> None:
        super().__init__()
        if dim % heads:
            raise PeftError(f"SMoA heads ({heads}) must divide the token dim ({dim})")
        if not 1 <= top_k <= num_experts:
            raise PeftError(f"SMoA top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.dim, self.heads, self.chunk = dim, heads, dim // heads
        self.num_experts, self.top_k = num_experts, top_k
        self.temperature, self.balance_weight = temperature, balance_weight
        self.down_weight = nn.Parameter(torch.empty(num_experts, self.chunk, bottleneck))
        self.down_bias = nn.Parameter(torch.zeros(num_experts, bottleneck))
        self.up_weight = nn.Parameter(torch.zeros(num_experts, bottleneck, self.chunk))
        self.up_bias = nn.Parameter(torch.zeros(num_experts, self.chunk))
        self.router = nn.Linear(self.chunk, router_dim)
        self.expert_embeddings = nn.Parameter(torch.randn(num_experts, router_dim) * 0.02)
        bound = 1 / math.sqrt(self.chunk)
        nn.init.uniform_(self.down_weight, -bound, bound)
        self.last_routing: dict[int, torch.Tensor] = {}
        self._balance_losses: dict[int, torch.Tensor] = {}

    def route(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (S, D/heads) -> gate probabilities (S, num_experts)."""
        query = F.normalize(self.router(chunks), dim=-1)
        keys = F.normalize(self.expert_embeddings, dim=-1)
        return (query @ keys.t() / self.temperature).softmax(dim=-1)

    def forward(self, h: torch.Tensor, block_index: int) -> torch.Tensor:
        batch, tokens, dim = h.shape
        chunks = h.reshape(-1, self.chunk)  # (S, c) with S = B*T*heads
        probs = self.route(chunks)
        gates, experts = probs.topk(self.top_k, dim=-1)  # (S, k)
        out = torch.zeros_like(chunks)
        for expert in range(self.num_experts):
            rows, slot = (experts == expert).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            x = chunks.index_select(0, rows)
            y = F.gelu(x @ self.down_weight[expert] + self.down_bias[expert]) @ self.up_weight[expert] \
                + self.up_bias[expert]
            out = out.index_add(0, rows, y * gates[rows, slot].unsqueeze(-1))
        top1 = experts[:, 0]
        fraction = F.one_hot(top1, self.num_experts).float().mean(0)
        self._balance_losses[block_index] = self.num_experts * (fraction * probs.mean(0)).sum()
        self.last_routing[block_index] = top1.detach().reshape(batch, tokens, self.heads)
        return out.reshape(batch, tokens, dim)

    def aux_loss(self) -> torch.Tensor | None:
        """balance_weight x mean over blocks of the last forward's load-balancing losses."""
        if not self._balance_losses:
            return None
        return self.balance_weight * torch.stack(list(self._balance_losses.values())).mean()


class SMoABranch(nn.Module):
    """Block ``index``'s view of the shared pool (in ``block.mlp_branches``); keeps its last output for the PG.

    The pool is held without registering it, so its weights appear once in the state dict (under
    ``peft_modules.smoa``), however many blocks use it.
    """

    is_peft_layer = True
    prompt_source = True

    def __init__(self, pool: SharedMixtureOfAdapters, index: int, scale: float) -> None:
        super().__init__()
        object.__setattr__(self, "pool", pool)
        self.index = index
        self.scale = scale
        self.last_output: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.scale * self.pool(h, self.index)
        self.last_output = out
        return out

    def extra_repr(self) -> str:
        return f"block={self.index}, scale={self.scale} (shared pool: peft_modules.smoa)"


@register_method
@dataclasses.dataclass
class SMoAConfig(PeftConfig):
    """Shared mixture of adapters; see the module docstring for every default."""

    method: ClassVar[str] = "smoa"

    num_experts: int = 8
    heads: int = 2
    bottleneck: int = 40
    router_dim: int = 32
    temperature: float = 0.1
    top_k: int = 1
    balance_weight: float = 0.01
    scale: float = 0.1

    def inject(self, backbone: nn.Module, host) -> list[str]:
        pool = SharedMixtureOfAdapters(backbone.embed_dim, self.num_experts, self.heads, self.bottleneck,
                                       self.router_dim, self.temperature, self.top_k, self.balance_weight)
        host.peft_modules["smoa"] = pool
        for index, block in enumerate(backbone_blocks(backbone)):
            block.mlp_branches.append(SMoABranch(pool, index, self.scale))
        return []
