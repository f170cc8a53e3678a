"""2D Vision Transformer built from the same :class:`Block` as the point backbones, with timm's state-dict keys.

``patch_embed.proj`` (Conv2d P x P, stride P) -> cls token -> + learned ``pos_embed`` (once) -> ``blocks.{i}``
(qkv with bias, LayerNorm eps 1e-6) -> ``norm`` -> cls token -> ``head``. ``vit_base_patch16_224`` with 1000
classes has 86,567,656 parameters, as timm's.

Weights load through :func:`pcpeft.load_checkpoint`: timm files (``.pth``/``.bin``/``.safetensors``, any wrapping
key) as they are, and the original JAX ``.npz`` files (e.g. ViT-B/16 ImageNet-21k) mapped to our keys the way
timm's ``_load_weights`` does. A ``pos_embed`` of another grid size is resized bicubically (antialiased, as timm's
``resample_abs_pos_embed``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_absent_by_design
from .registry import register_model
from .transformer import BlockStack

#: a timm-layout file without ``head.*`` holds a backbone only (pcpeft/assets/demo_vit.safetensors, timm's
#: ``num_classes=0`` exports): the head is trained from scratch
register_absent_by_design("timm_backbone", {"head.": "classification head, trained from scratch when fine-tuning"})


@dataclass
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H/P * W/P, D) through ``proj`` = Conv2d(C, D, P, stride P)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.img_size, self.patch_size = img_size, patch_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid ** 2
        self.out_channels = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"ViT expects images (B, C, {self.img_size}, {self.img_size}), got {tuple(x.shape)}")
        return self.proj(x).flatten(2).transpose(1, 2)


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: int, prefix_tokens: int = 1) -> torch.Tensor:
    """(1, prefix + g*g, D) -> (1, prefix + new_grid^2, D), bicubic + antialias over the patch grid."""
    prefix, grid_tokens = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    old_grid = int(math.isqrt(grid_tokens.shape[1]))
    if old_grid * old_grid != grid_tokens.shape[1]:
        raise ValueError(f"pos_embed with {grid_tokens.shape[1]} patch tokens is not a square grid")
    if old_grid == new_grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = grid_tokens.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


class VisionTransformer(nn.Module):
    """timm-compatible ViT. ``forward_features(images)`` -> normalised tokens (B, 1+P+N, D); ``forward_head``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.embed_dim = self.num_features = config.embed_dim
        self.classifier_name = "head"
        self.token_output_module = "patch_embed"
        self.prompt_pooling = False
        self.head_pooling: nn.Module | None = None  # set by a PEFT method (set_head_pooling)
        self.patch_embed = PatchEmbed(config.img_size, config.patch_size, config.in_chans, config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, config.embed_dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        self.blocks = BlockStack(config.embed_dim, config.depth, config.num_heads, config.mlp_ratio,
                                 qkv_bias=config.qkv_bias, drop=config.drop_rate, drop_path_rate=config.drop_path_rate,
                                 norm_eps=1e-6)
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        self.head = nn.Linear(config.embed_dim, config.num_classes) if config.num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's default ViT init: trunc-normal(0.02) pos_embed and Linear weights, cls token N(0, 1e-6)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def block_stack(self) -> BlockStack:
        return self.blocks

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + self.blocks.num_added_tokens()

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> tokens (B, 1+P+N, D)."""
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(self.pos_drop(x)))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """cls token (B, D); with prompt pooling concat(cls, mean of prompt tokens) (B, 2D)."""
        if self.head_pooling is not None:
            return self.head_pooling(tokens, self.num_prefix_tokens)
        if self.prompt_pooling:
            return torch.cat([tokens[:, 0], tokens[:, 1:self.num_prefix_tokens].mean(dim=1)], dim=-1)
        return tokens[:, 0]

    def set_head_pooling(self, pooling: nn.Module, width: int) -> None:
        """Let a PEFT method choose the head input: ``pooling(tokens (B, T, C), num_prefix_tokens) -> (B, width)``;
        the head's first Linear is re-created (fresh init) when its input width changes."""
        self.head_pooling = pooling
        if self.head.in_features != width:
            self.head = nn.Linear(width, self.num_classes)

    def enable_prompt_pooling(self) -> None:
        """Let the head read the prompt tokens (DAPT): the head widens to 2D inputs, freshly initialised."""
        if not self.prompt_pooling:
            self.prompt_pooling = True
            self.head = nn.Linear(2 * self.embed_dim, self.num_classes)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        feat = self.pool(tokens)
        return feat if pre_logits else self.head(feat)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def architecture(self) -> dict:
        return asdict(self.config)

    # -- checkpoint conversion (called by pcpeft.load_checkpoint) ---------------------------------------------
    def convert_checkpoint_state(self, state: dict[str, torch.Tensor]) -> tuple[str, dict, dict[str, list[str]]]:
        """timm keys pass through; JAX npz names are mapped; pos_embed is resized to this model's grid."""
        dropped: dict[str, list[str]] = {}
        if any(k.startswith("Transformer/") for k in state):
            layout, state, dropped = "vit_jax_npz", *_map_jax_vit(state, len(self.blocks))
        else:
            layout = "timm" if any(k.startswith("head.") for k in state) else "timm_backbone"
        if "pos_embed" in state and state["pos_embed"].shape != self.pos_embed.shape:
            state = dict(state)
            state["pos_embed"] = resample_pos_embed(state["pos_embed"], self.patch_embed.grid)
        return layout, state, dropped


def _np(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(array, dtype=np.float32)))


def _map_jax_vit(w: dict, depth: int) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Original google-research ViT npz arrays -> our (timm) keys."""
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        used.add(name)
        return _np(w[name])

    out = {
        "patch_embed.proj.weight": take("embedding/kernel").permute(3, 2, 0, 1),  # HWIO -> OIHW
        "patch_embed.proj.bias": take("embedding/bias"),
        "cls_token": take("cls"),
        "pos_embed": take("Transformer/posembed_input/pos_embedding"),
        "norm.weight": take("Transformer/encoder_norm/scale"),
        "norm.bias": take("Transformer/encoder_norm/bias"),
    }
    if "head/kernel" in w:
        out["head.weight"], out["head.bias"] = take("head/kernel").t(), take("head/bias")
    for i in range(depth):
        p = f"Transformer/encoderblock_{i}/"
        mha = p + "MultiHeadDotProductAttention_1/"
        out[f"blocks.{i}.norm1.weight"] = take(p + "LayerNorm_0/scale")
        out[f"blocks.{i}.norm1.bias"] = take(p + "LayerNorm_0/bias")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([take(f"{mha}{n}/kernel").flatten(1).t()
                                                        for n in ("query", "key", "value")])
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([take(f"{mha}{n}/bias").reshape(-1)
                                                      for n in ("query", "key", "value")])
        out[f"blocks.{i}.attn.proj.weight"] = take(mha + "out/kernel").permute(2, 0, 1).flatten(1)
        out[f"blocks.{i}.attn.proj.bias"] = take(mha + "out/bias")
        out[f"blocks.{i}.norm2.weight"] = take(p + "LayerNorm_2/scale")
        out[f"blocks.{i}.norm2.bias"] = take(p + "LayerNorm_2/bias")
        for j, fc in ((0, "fc1"), (1, "fc2")):
            out[f"blocks.{i}.mlp.{fc}.weight"] = take(f"{p}MlpBlock_3/Dense_{j}/kernel").t()
            out[f"blocks.{i}.mlp.{fc}.bias"] = take(f"{p}MlpBlock_3/Dense_{j}/bias")
    rest = sorted(set(w) - used)
    return out, ({"JAX arrays unused by the classifier (e.g. pre_logits of the 21k checkpoints)": rest} if rest else {})


def _vit(embed_dim: int, depth: int, num_heads: int, overrides: dict) -> VisionTransformer:
    """Defaults of a named size; ``overrides`` (any ViTConfig field, depth included) win."""
    return VisionTransformer(ViTConfig(**{"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
                                          **overrides}))


@register_model("vit_tiny_patch16_224")
def vit_tiny_patch16_224(**overrides) -> VisionTransformer:
    return _vit(192, 12, 3, overrides)


@register_model("vit_small_patch16_224")
def vit_small_patch16_224(**overrides) -> VisionTransformer:
    return _vit(384, 12, 6, overrides)


@register_model("vit_base_patch16_224")
def vit_base_patch16_224(**overrides) -> VisionTransformer:
    return _vit(768, 12, 12, overrides)


for _builder in (vit_tiny_patch16_224, vit_small_patch16_224, vit_base_patch16_224):
    _builder.config_class = ViTConfig
