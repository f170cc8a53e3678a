"""SSF - Scale and Shift your Features (Lian et al., NeurIPS 2022).

``y = x * gamma + beta`` per channel after: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2 of every block,
the tokenizer output (before the positional embedding; the patch embedding on the ViT, as in the SSF paper) and
the final norm. gamma ~ N(1, 0.02), beta ~ N(0, 0.02).

Every SSF follows a linear map or a LayerNorm, so ``merge_and_unload`` folds it exactly:
``W' = gamma[:, None] * W``, ``b' = gamma * b + beta``. Two places need more than that:

* ``attn.qkv`` without bias (Point-MAE / Point-BERT): adding a bias would change the parameter count, so the
  shift is folded without one. The k part is dropped (adding a constant to every key shifts each query's scores
  by a constant: softmax ignores it); the v part passes through attention unchanged (weights sum to 1) and
  becomes ``proj.bias += W_proj @ beta_v``; the q part goes into W_q through the constant direction of the
  preceding LayerNorm (for any LN output x, ``sum_i x_i / w_i = sum_i b_i / w_i = K``), i.e.
  ``W_q += beta_q (1/w)^T / K``. If that LayerNorm is ill-conditioned for this (|K| tiny or a weight ~0) the
  merge falls back to giving qkv a bias, and says so.
* the point tokenizer: its token is a max over points of the last conv, so the fold into that conv is exact only
  for gamma > 0 (max commutes with a positive scale); otherwise the merge refuses with the offending channels.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import torch
from torch import nn

from ..models.transformer import Block
from .base import PeftConfig, PeftError, backbone_blocks, register_method, replace_submodule

BLOCK_SITES = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")


class SSFWrapper(nn.Module):
    """Wraps a layer whose output's last dim has ``channels`` channels: ``base(x) * ssf_scale + ssf_shift``."""

    is_peft_layer = True

    def __init__(self, base: nn.Module, channels: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.base = base
        self.ssf_scale = nn.Parameter(1 + init_std * torch.randn(channels))
        self.ssf_shift = nn.Parameter(init_std * torch.randn(channels))

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.base(*args, **kwargs) * self.ssf_scale + self.ssf_shift

    def merged(self) -> nn.Module:
        """The base layer with this SSF folded into its weights (in place)."""
        return fold_scale_shift(self.base, self.ssf_scale.detach(), self.ssf_shift.detach())


def _output_channels(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return module.out_channels
    channels = getattr(module, "out_channels", None)
    if channels is None:
        raise PeftError(f"SSF cannot tell the output channels of {type(module).__name__}")
    return channels


@torch.no_grad()
def fold_scale_shift(module: nn.Module, gamma: torch.Tensor, beta: torch.Tensor) -> nn.Module:
    """Fold ``y -> y * gamma + beta`` into ``module``'s weights in place and return it."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        shape = (-1,) + (1,) * (module.weight.dim() - 1)
        module.weight.mul_(gamma.view(shape))
        if module.bias is None:
            module.bias = nn.Parameter(beta.clone())
        else:
            module.bias.mul_(gamma).add_(beta)
        return module
    if isinstance(module, nn.LayerNorm):
        module.weight.mul_(gamma)
        module.bias.mul_(gamma).add_(beta)
        return module
    projection = getattr(module, "proj", None)
    if isinstance(projection, (nn.Conv2d, nn.Linear)):  # the ViT's PatchEmbed: its output is proj's, flattened
        fold_scale_shift(projection, gamma, beta)
        return module
    last_conv = getattr(module, "second_conv", None)
    if last_conv is not None:  # MiniPointNet: token = max over points of second_conv[-1]
        negative = (gamma <= 0).nonzero().flatten().tolist()
        if negative:
            raise PeftError(f"cannot merge SSF into the point tokenizer: scale <= 0 in channels {negative[:8]} "
                            f"(the max over points only commutes with a positive scale)")
        fold_scale_shift(last_conv[-1], gamma, beta)
        return module
    raise PeftError(f"SSF merge does not know how to fold into {type(module).__name__}")


@torch.no_grad()
def _merge_qkv_without_bias(block: Block, qkv: SSFWrapper) -> None:
    """Fold the qkv SSF into a bias-free qkv (see module docstring). Expects norm1 already merged."""
    linear, norm, proj = qkv.base, block.norm1, block.attn.proj
    proj = proj.base if isinstance(proj, SSFWrapper) else proj  # fold into the linear, under proj's own SSF
    dim = linear.in_features
    gamma, beta = qkv.ssf_scale.detach(), qkv.ssf_shift.detach()
    beta_q, beta_v = beta[:dim], beta[2 * dim:]
    w = norm.weight.detach().double()
    k_const = (norm.bias.detach().double() / w).sum() if bool((w.abs() > 1e-6).all()) else torch.tensor(0.0)
    if not isinstance(norm, nn.LayerNorm) or abs(float(k_const)) < 1e-3:
        warnings.warn("SSF merge: norm1 cannot carry the q shift exactly; giving attn.qkv a bias instead")
        block.attn.qkv = fold_scale_shift(linear, gamma, beta)
        return
    linear.weight.mul_(gamma[:, None])
    linear.weight[:dim] += (beta_q.double()[:, None] * (1.0 / w)[None, :] / k_const).to(linear.weight.dtype)
    proj.bias.add_(proj.weight @ beta_v)
    block.attn.qkv = linear


@register_method
@dataclasses.dataclass
class SSFConfig(PeftConfig):
    """SSF everywhere. ``sites``: block sub-layers; ``tokenizer`` / ``final_norm``: the two extra places."""

    method: ClassVar[str] = "ssf"
    mergeable: ClassVar[bool] = True
    claims: ClassVar[frozenset[str]] = frozenset({"linear layers of every block (wrapped)"})

    sites: tuple[str, ...] = BLOCK_SITES
    tokenizer: bool = True
    final_norm: bool = True
    init_std: float = 0.02

    def inject(self, backbone: nn.Module, host) -> list[str]:
        for block in backbone_blocks(backbone):
            for site in self.sites:
                layer = block.get_submodule(site)
                replace_submodule(block, site, SSFWrapper(layer, _output_channels(layer), self.init_std))
        names = []
        if self.tokenizer:
            names.append(backbone.token_output_module)
        if self.final_norm:
            names.append("norm")
        for name in names:
            layer = backbone.get_submodule(name)
            replace_submodule(backbone, name, SSFWrapper(layer, _output_channels(layer), self.init_std))
        return []

    def merge(self, backbone: nn.Module) -> None:
        """Fold every SSF into the backbone (norm1 before qkv, qkv before proj: the q/v folds need them)."""
        for block in backbone_blocks(backbone):
            for site in self.sites:
                wrapper = block.get_submodule(site)
                if site == "attn.qkv" and wrapper.base.bias is None:
                    continue
                replace_submodule(block, site, wrapper.merged())
            qkv = block.attn.qkv
            if isinstance(qkv, SSFWrapper):
                if isinstance(block.norm1, SSFWrapper):
                    block.norm1 = block.norm1.merged()
                _merge_qkv_without_bias(block, qkv)
        for name, module in list(backbone.named_modules()):
            if isinstance(module, SSFWrapper):
                replace_submodule(backbone, name, module.merged())
