"""The one transformer block family shared by every backbone (Point-MAE, Point-BERT, ACT, ReCon, PointGPT, ViT),
and the block stack.

Nothing here is point-specific. The backbones differ only in options of :class:`Block`:

* ``qkv_bias``: PointGPT's ``nn.MultiheadAttention`` is a fused projection *with* bias (``in_proj_weight`` /
  ``in_proj_bias`` / ``out_proj`` map onto ``attn.qkv`` / ``attn.proj`` at load time: same [q | k | v] layout);
* ``causal``: PointGPT masks attention causally, also at fine-tune time;
* ``residual``: where the residual of each sub-layer starts (``"input"``: pre-norm, Point-MAE; ``"normed_attn"``:
  the attention residual starts from the normalised input, PointGPT; ``"normed"``: both do, ReCon);
* ``drop_path``: stochastic depth, or none (0);
* ``num_global_tokens``: ReCon's global tokens (cls, img, text), which leave the self-attention and instead
  cross-attend the patch tokens in a second, ``*_contrast`` branch of the block.

Sub-layer names follow timm / the reference repos (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``) so state dicts load unchanged and PEFT methods can wrap or replace those named modules.

The stack exposes one extension point for methods that change the token *sequence* (prompts): objects registered
with :meth:`BlockStack.add_sequence_hook` are called before and after every block and may insert or replace
tokens right after position 0 (the cls token; PointGPT's sos). They declare how many tokens they add, so the head
knows where the point/patch tokens start without any state from the forward pass.
"""
from __future__ import annotations

from typing import Literal, Protocol, Sequence

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
                 proj_drop: float = 0.0, causal: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.causal = causal
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
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
                                             is_causal=self.causal)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out))


class CrossAttention(nn.Module):
    """Queries (B, S, D) attend keys/values made from context (B, T, D) -> (B, S, D) (ReCon's ``attn_contrast``).

    ``q`` = Linear(D, D), ``kv`` = Linear(D, 2D) laid out [k | v] with heads contiguous, ``proj`` with bias.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, count, dim = queries.shape
        q = self.q(queries).reshape(batch, count, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(context).reshape(batch, context.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, count, dim)))


Residual = Literal["input", "normed_attn", "normed"]


class Block(nn.Module):
    """Pre-norm block (Point-MAE default): ``x + drop_path(attn(norm1(x)))`` then
    ``x + drop_path(mlp(h) + sum(branch(h)))`` with ``h = norm2(x)``. (B, T, D) -> (B, T, D).

    ``mlp_branches`` (empty for the plain backbones, so it adds no state-dict keys) holds modules that run in
    parallel to the MLP on the same normalised input: AdaptFormer adapters, SMoA, DAPT's dynamic adapter.

    Options (see the module docstring): ``causal``; ``residual`` = ``"normed_attn"`` gives
    ``y = norm1(x); x = y + attn(y)`` (PointGPT), ``"normed"`` also ``h = norm2(x); x = h + mlp(h)`` (ReCon);
    ``num_global_tokens`` = G > 0 adds ReCon's contrast branch (``norm1_contrast``, ``attn_contrast``,
    ``norm2_contrast``, ``mlp_contrast``): the global tokens (position 0, and G-1 positions after the tokens a
    sequence hook inserted after position 0) cross-attend the normalised other tokens, which self-attend alone.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-5, *,
                 causal: bool = False, residual: Residual = "input", num_global_tokens: int = 0) -> None:
        super().__init__()
        if residual not in ("input", "normed_attn", "normed"):
            raise ValueError(f"residual must be 'input', 'normed_attn' or 'normed', got {residual!r}")
        if num_global_tokens and causal:
            raise ValueError("global (contrast) tokens and a causal mask are not combined by any backbone")
        self.residual = residual
        self.num_global_tokens = num_global_tokens
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop, causal=causal)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.mlp_branches = nn.ModuleList()
        if num_global_tokens:
            self.norm1_contrast = nn.LayerNorm(dim, eps=norm_eps)
            self.norm2_contrast = nn.LayerNorm(dim, eps=norm_eps)
            self.mlp_contrast = Mlp(dim, int(dim * mlp_ratio), drop=drop)
            self.attn_contrast = CrossAttention(dim, num_heads, qkv_bias=qkv_bias, proj_drop=drop)

    def _self_branch(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The block on tokens that self-attend: x (B, T, D) and h = norm1(x) -> (B, T, D)."""
        x = (x if self.residual == "input" else h) + self.drop_path(self.attn(h))
        h = self.norm2(x)
        out = self.mlp(h)
        for branch in self.mlp_branches:
            out = out + branch(h)
        return (h if self.residual == "normed" else x) + self.drop_path(out)

    def _global_branch(self, g: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Global tokens g (B, G, D) cross-attend the normalised context (B, T, D); residuals as ``residual``."""
        h = self.norm1_contrast(g)
        g = (g if self.residual == "input" else h) + self.drop_path(self.attn_contrast(h, context))
        h = self.norm2_contrast(g)
        return (h if self.residual == "normed" else g) + self.drop_path(self.mlp_contrast(h))

    def forward(self, x: torch.Tensor, inserted: int = 0) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); ``inserted``: tokens a sequence hook placed after position 0 (they belong to
        the self-attending tokens)."""
        if not self.num_global_tokens:
            return self._self_branch(x, self.norm1(x))
        rest = 1 + inserted
        end = rest + self.num_global_tokens - 1
        g = torch.cat([x[:, :1], x[:, rest:end]], dim=1)
        p = torch.cat([x[:, 1:rest], x[:, end:]], dim=1)
        h = self.norm1(p)
        g = self._global_branch(g, h)
        p = self._self_branch(p, h)
        return torch.cat([g[:, :1], p[:, :inserted], g[:, 1:], p[:, inserted:]], dim=1)


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
                 norm_eps: float = 1e-5, **block_options) -> None:
        """``block_options``: the keyword-only options of :class:`Block` (causal, residual, num_global_tokens)."""
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        super().__init__(Block(dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, rate, norm_eps, **block_options)
                         for rate in rates)
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
        """x (B, T, D), pos (B, T, D) or None -> (B, T + added, D).

        Each block is told how many tokens the hooks have inserted so far (they sit after position 0).
        """
        return self.forward_taps(x, pos, (len(self) - 1,))[0]

    def forward_taps(self, x: torch.Tensor, pos: torch.Tensor | None, taps: Sequence[int]) -> list[torch.Tensor]:
        """Like ``forward``, but returns the stream after each block in ``taps`` (ascending indices; negative
        ones count from the end), each (B, T + added so far, D). Blocks after the last tap do not run."""
        wanted = sorted({t % len(self) for t in taps})
        if not wanted or len(wanted) != len(taps):
            raise ValueError(f"taps {list(taps)} must be distinct block indices of a stack of depth {len(self)}")
        length, out = x.shape[1], []
        for index, block in enumerate(self):
            if index > wanted[-1]:
                break
            for hook in self._sequence_hooks:
                x, pos = hook.before_block(index, x, pos)
            x = block(x if pos is None else x + pos, x.shape[1] - length)
            for hook in self._sequence_hooks:
                x, pos = hook.after_block(index, x, pos)
            if index in wanted:
                out.append(x)
        return out


class TransformerEncoder(nn.Module):
    """The point references' wrapper around the stack (state-dict keys ``blocks.{i}.*`` beneath it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.blocks = BlockStack(*args, **kwargs)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.blocks(x, pos)
