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

Dispatch (``SharedMixtureOfAdapters.dispatch``, not part of the config: every mode computes the same function,
equal to the per-expert loop to float rounding): see :data:`Dispatch`.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method

#: How the chosen experts run: ``batched`` (chunks placed in equal-sized row blocks per expert, padded; all
#: experts as two ``baddbmm`` calls, one gather back; one host read of the expert counts per block),
#: ``sorted`` (chunks sorted by expert, two matmuls per expert on contiguous slices; same host read),
#: ``dense`` (every expert on every chunk, gates zero elsewhere; no host sync, E times the expert FLOPs),
#: ``auto`` (dense on CUDA, where syncs and launches dominate; batched elsewhere: measured fastest on CPU,
#: docs/benchmarks.md).
Dispatch = Literal["auto", "batched", "sorted", "dense"]


class _PlaceRows(torch.autograd.Function):
    """x (R, c) -> (total, c) with row i at ``slots[i]`` and zeros elsewhere (``slots`` distinct); the backward is
    the gather ``grad[slots]``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slots: torch.Tensor, total: int) -> torch.Tensor:
        ctx.save_for_backward(slots)
        return x.new_zeros(total, x.shape[1]).index_copy_(0, slots, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slots,) = ctx.saved_tensors
        return grad.index_select(0, slots), None, None


class _TakeRows(torch.autograd.Function):
    """y (total, c) -> y[slots] (R, c) for distinct ``slots``; the backward places the rows back (a copy into
    zeros, not the scatter-add of ``index_select``'s backward)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(slots)
        ctx.total = y.shape[0]
        return y.index_select(0, slots)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slots,) = ctx.saved_tensors
        return grad.new_zeros(ctx.total, grad.shape[1]).index_copy_(0, slots, grad), None


class SharedMixtureOfAdapters(nn.Module):
    """The shared expert pool and router. (B, T, D) -> (B, T, D), plus routing bookkeeping per block."""

    def __init__(self, dim: int, num_experts: int = 8, heads: int = 2, bottleneck: int = 40, router_dim: int = 32,
                 temperature: float = 0.1, top_k: int = 1, balance_weight: float = 0.01,
                 dispatch: Dispatch = "auto") -> None:
        super().__init__()
        if dispatch not in ("auto", "batched", "sorted", "dense"):
            raise PeftError(f"SMoA dispatch must be 'auto', 'batched', 'sorted' or 'dense', got {dispatch!r}")
        if dim % heads:
            raise PeftError(f"SMoA heads ({heads}) must divide the token dim ({dim})")
        if not 1 <= top_k <= num_experts:
            raise PeftError(f"SMoA top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.dim, self.heads, self.chunk = dim, heads, dim // heads
        self.num_experts, self.top_k = num_experts, top_k
        self.temperature, self.balance_weight = temperature, balance_weight
        self.dispatch = dispatch
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
        scores = query @ keys.t() / self.temperature
        # softmax written out: torch's kernel vectorises along the last dim, which is only num_experts wide (3.6x
        # slower at 2160 x 8, measured); equal to it to float rounding
        weights = (scores - scores.amax(dim=-1, keepdim=True)).exp()
        return weights / weights.sum(dim=-1, keepdim=True)

    def forward(self, h: torch.Tensor, block_index: int) -> torch.Tensor:
        """h (B, T, D) -> (B, T, D); records block ``block_index``'s balance loss and top-1 routing."""
        batch, tokens, dim = h.shape
        chunks = h.reshape(-1, self.chunk)  # (S, c) with S = B*T*heads
        probs = self.route(chunks)
        # (S, k); top-1 by max, 6x cheaper than topk for k = 1 (same index: the first of equal maxima)
        gates, experts = probs.max(dim=-1, keepdim=True) if self.top_k == 1 else probs.topk(self.top_k, dim=-1)
        mode = self.dispatch if self.dispatch != "auto" else ("dense" if h.is_cuda else "batched")
        if mode == "dense":
            out = self._dense_experts(chunks, gates, experts)
        elif mode == "batched":
            out = self._batched_experts(chunks, gates, experts)
        else:
            out = self._sorted_experts(chunks, gates, experts)
        top1 = experts[:, 0]
        fraction = F.one_hot(top1, self.num_experts).float().mean(0)
        self._balance_losses[block_index] = self.num_experts * (fraction * probs.mean(0)).sum()
        self.last_routing[block_index] = top1.detach().reshape(batch, tokens, self.heads)
        return out.reshape(batch, tokens, dim)

    def _pairs_by_expert(self, chunks: torch.Tensor, experts: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """What both grouped dispatches share. chunks (S, c), experts (S, k) -> the (chunk, slot) pairs (S*k, c)
        (pair i = chunk i // k, slot i % k), their experts (S*k,), the stable order that groups them by expert,
        each pair's position in that order (the inverse permutation), the expert counts (E,), and those counts
        read to the host (the one host read of a call)."""
        count, k = chunks.shape[0], self.top_k
        pairs = chunks if k == 1 else chunks.unsqueeze(1).expand(count, k, self.chunk).reshape(count * k, self.chunk)
        flat_experts = experts.reshape(-1)
        order = flat_experts.argsort(stable=True)
        position = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        counts = torch.bincount(flat_experts, minlength=self.num_experts)
        return pairs, flat_experts, order, position, counts, counts.tolist()

    def _weigh(self, y: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Expert outputs of the pairs (S*k, c) weighted by their gates (S, k) and summed per chunk -> (S, c)."""
        y = y.reshape(gates.shape[0], self.top_k, self.chunk) * gates.unsqueeze(-1)
        return y[:, 0] if self.top_k == 1 else y.sum(1)

    def _sorted_experts(self, chunks: torch.Tensor, gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Grouped matmul over chunks sorted by expert. chunks (S, c), gates / experts (S, k) -> (S, c).

        One argsort and one ``bincount`` per call (a single host read of the E counts, no per-expert
        ``nonzero``); each expert runs two matmuls on its contiguous slice. Rows move only by gathers whose
        backward places rows back: no ``index_add``, which is pathologically slow on a busy multi-threaded CPU.
        """
        pairs, _, order, position, _, sizes = self._pairs_by_expert(chunks, experts)
        grouped = _TakeRows.apply(pairs, order)  # (S*k, c), grouped by expert
        pieces = []
        for expert, xe in enumerate(grouped.split(sizes)):
            if xe.shape[0]:
                hidden = F.gelu(xe @ self.down_weight[expert] + self.down_bias[expert])
                pieces.append(hidden @ self.up_weight[expert] + self.up_bias[expert])
        return self._weigh(_TakeRows.apply(torch.cat(pieces), position), gates)

    def _batched_experts(self, chunks: torch.Tensor, gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """All experts in two batched matmuls over a padded layout. chunks (S, c), gates / experts (S, k) -> (S, c).

        Routing is rarely balanced (at initialisation one expert can take 3x its share), so the batch is made of
        *blocks* of ``cap = ceil(S*k / E)`` rows: expert e gets ``ceil(n_e / cap)`` consecutive blocks, each run
        with e's weights. The (chunk, slot) pair routed to e as its r-th chunk (in chunk order) goes to row
        ``first_block(e) * cap + r``; at most E - 1 blocks' worth of padding rows are computed (never read).
        One host read of the E counts per call; rows move by a placement and a gather whose backwards are each
        other's.
        """
        pairs, flat_experts, _, position, counts, sizes = self._pairs_by_expert(chunks, experts)
        device = flat_experts.device
        cap = max(1, -(-flat_experts.numel() // self.num_experts))
        blocks = [-(-size // cap) for size in sizes]  # blocks per expert
        first_block = [0, *itertools.accumulate(blocks[:-1])]
        block_expert = torch.repeat_interleave(torch.arange(self.num_experts, device=device),
                                               torch.tensor(blocks, device=device))
        # pair i is the (position - first pair of its expert)-th of its expert
        row_zero = torch.tensor(first_block, device=device) * cap - (counts.cumsum(0) - counts)  # (E,)
        slots = row_zero[flat_experts] + position  # (S*k,) distinct rows of (blocks * cap)
        total = len(block_expert)
        padded = _PlaceRows.apply(pairs, slots, total * cap).reshape(total, cap, self.chunk)
        hidden = F.gelu(torch.baddbmm(self.down_bias[block_expert].unsqueeze(1), padded,
                                      self.down_weight[block_expert]))  # (blocks, cap, b)
        out = torch.baddbmm(self.up_bias[block_expert].unsqueeze(1), hidden, self.up_weight[block_expert])
        return self._weigh(_TakeRows.apply(out.reshape(total * cap, self.chunk), slots), gates)

    def _dense_experts(self, chunks: torch.Tensor, gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Every expert on every chunk as two wide matmuls, unchosen experts weighted 0; no host sync at all.
        chunks (S, c), gates / experts (S, k) -> (S, c). E times the expert FLOPs of ``sorted``."""
        weights = (F.one_hot(experts, self.num_experts).to(gates.dtype) * gates.unsqueeze(-1)).sum(1)  # (S, E)
        down = self.down_weight.permute(1, 0, 2).reshape(self.chunk, -1)  # (c, E*b)
        hidden = F.gelu(torch.addmm(self.down_bias.reshape(-1), chunks, down))  # (S, E*b)
        hidden = (hidden.reshape(chunks.shape[0], self.num_experts, -1) * weights.unsqueeze(-1)).reshape(
            chunks.shape[0], -1)
        return torch.addmm(weights @ self.up_bias, hidden, self.up_weight.reshape(-1, self.chunk))

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
