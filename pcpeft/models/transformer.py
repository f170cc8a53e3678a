"""The one pre-norm transformer block shared by Point-MAE, Point-BERT and the ViT, and the block stack.

Nothing here is point-specific. Sub-layer names follow timm / the reference repos (``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) so state dicts load unchanged and PEFT methods can wrap or
replace those named modules.

The stack exposes one extension point for methods that change the token *sequence* (prompts): objects registered
with :meth:`BlockStack.add_sequence_hook` are called before and after every block and may insert or replace
tokens right after the cls token. They declare how many tokens they add, so the head knows where the point/patch
tokens start without any state from the forward pass.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: zero a whole sample's residual branch with probability ``drop_prob`` (training only)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout. (..., D) -> (..., D)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``. (B, T, D) -> (B, T, D).

    ``qkv`` is one Linear(D, 3D) whose output is laid out [q | k | v], heads contiguous inside each, exactly as
    timm and the reference repos; scale is head_dim^-0.5.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, T, hd)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm block: ``x + drop_path(attn(norm1(x)))`` then ``x + drop_path(mlp(h) + sum(branch(h)))`` with
    ``h = norm2(x)``. (B, T, D).

    ``mlp_branches`` (empty for the plain backbones, so it adds no state-dict keys) holds modules that run in
    parallel to the MLP on the same normalised input: AdaptFormer adapters, SMoA, DAPT's dynamic adapter.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.mlp_branches = nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        h = self.norm2(x)
        out = self.mlp(h)
        for branch in self.mlp_branches:
            out = out + branch(h)
        return x + self.drop_path(out)


class SequenceHook(Protocol):
    """What a prompt-style method registers on a :class:`BlockStack`.

    ``before_block`` / ``after_block`` get the block index, the tokens (B, T, D) and the per-token positional
    embedding (B, T, D) or None, and return both (possibly with tokens inserted after the cls token).
    ``num_added_tokens(depth)`` is how many tokens the hook has added once all blocks have run.
    """

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def num_added_tokens(self, depth: int) -> int: ...


class BlockStack(nn.ModuleList):
    """``depth`` blocks (its children, keys ``{i}.*``); ``pos`` (if given) is added to the input of every block,
    as in Point-MAE/Point-BERT (the ViT adds its positional embedding once and passes None).

    Every backbone exposes its stack as ``backbone.block_stack``; that is where PEFT methods find the blocks and
    register sequence hooks.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path_rate: float = 0.0,
                 norm_eps: float = 1e-5) -> None:
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        super().__init__(Block(dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, rate, norm_eps) for rate in rates)
        self._sequence_hooks: list[SequenceHook] = []

    @property
    def sequence_hooks(self) -> Sequence[SequenceHook]:
        return tuple(self._sequence_hooks)

    def add_sequence_hook(self, hook: SequenceHook) -> None:
        """Register a prompt-style hook (see :class:`SequenceHook`); hooks run in registration order."""
        self._sequence_hooks.append(hook)

    def remove_sequence_hook(self, hook: SequenceHook) -> None:
        self._sequence_hooks.remove(hook)

    def num_added_tokens(self) -> int:
        """Tokens the registered hooks insert after the cls token, in total."""
        return sum(h.num_added_tokens(len(self)) for h in self._sequence_hooks)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), pos (B, T, D) or None -> (B, T + added, D)."""
        for index, block in enumerate(self):
            for hook in self._sequence_hooks:
                x, pos = hook.before_block(index, x, pos)
            x = block(x if pos is None else x + pos)
            for hook in self._sequence_hooks:
                x, pos = hook.after_block(index, x, pos)
        return x


class TransformerEncoder(nn.Module):
    """The point references' wrapper around the stack (state-dict keys ``blocks.{i}.*`` beneath it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.blocks = BlockStack(*args, **kwargs)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.blocks(x, pos)
