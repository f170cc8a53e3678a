"""Part segmentation on the shared point transformer: the official Point-MAE ShapeNetPart network
(``Pang-Yatian/Point-MAE``, ``segmentation/models/pt.py``, ``get_model``), with its state-dict layout.

Data flow (official sizes: 384-d, 12 blocks, 128 groups of 32, taps after blocks 3, 7, 11, 50 parts):

* points (B, N, 3) -> ``group_divider`` (FPS centres + kNN) -> ``encoder`` (mini-PointNet) [-> ``reduce_dim``
  for Point-BERT] -> group tokens (B, G, C); ``pos_embed`` of the centres is added before every block. There is
  no cls token.
* the streams after the tapped blocks, each through the shared final ``norm``, concatenated: (B, 3C, G);
* global features: max and mean over the G groups (3C each) and ``label_conv`` of the one-hot category (64),
  repeated for every point;
* ``propagation_0``: every point takes the inverse-squared-distance weighted mean of its three nearest centres'
  features (weights 1/(d^2 + 1e-8), normalised), concatenated after its xyz (3 + 3C), then Conv1d-BN-ReLU to 4C
  and to 1024;
* per point: concat [propagated 1024, max 3C, mean 3C, label 64] -> Conv1d 512 BN ReLU Dropout(0.5) -> Conv1d 256
  BN ReLU -> Conv1d parts -> log-softmax. Output (B, N, parts).

Backbones: ``point_mae_partseg`` is exact to the official code; ``act_partseg`` is the same network, loading
ACT's pre-training layout (``ACT_encoder.*``); ``point_bert_partseg`` is a pcpeft composition (Point-BERT's
256-d tokenizer + ``reduce_dim``; Point-BERT released no segmentation code). ReCon (global tokens with a
cross-attention branch) and PointGPT (causal, sos token) are not offered: their blocks do not reduce to this
network without choices the official code never made.

Initialisation: PyTorch's defaults everywhere, as the official ``get_model`` (it defines no init of its own).

PEFT: the blocks are the shared ones, so every method attaches unchanged. Every method trains the head
(``label_conv``, ``propagation_0``, ``convs*``, ``bns*``: :attr:`head_parameter_patterns`), as the PEFT papers
do for segmentation. Prompt tokens that methods insert
(after position 0, or appended after the patches by PPT) are removed before the features are propagated; a
method's classification head pooling has nothing to choose here and is ignored. On this cls-less stack the
first patch token sits in the slot where methods expect the cls token.

Numerics: squared distances use the official expansion |a|^2 + |b|^2 - 2ab, clamped at 0: for a point that is its
own centre the expansion can give a tiny negative value (down to about -5e-7 in float32); its normalised weight
is about 1 either way, but a value of exactly -1e-8 would make the official weight infinite.

Grouping: FPS follows the backbones' ``exclude_near_origin`` option (default False: plain FPS, see pcpeft.ops.fps).
The official CUDA kernel never picks a point with |p|^2 <= 1e-3 after the first; set
``exclude_near_origin: true`` to reproduce the official logits on clouds with points that close to the origin.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fps import FpsBackend
from .checkpoints import register_absent_by_design
from .point_tokenizer import PositionalMLP, attach_point_tokenizer, check_tokenizer_width, group_and_tokenize
from .registry import register_model
from .transformer import BlockStack, TransformerEncoder

#: state-dict prefixes of the segmentation head (everything after the transformer)
HEAD_MODULES = ("label_conv", "propagation_0", "convs1", "convs2", "convs3", "bns1", "bns2")
_HEAD_REASON = "segmentation head (label embedding, propagation, per-point convs), trained when fine-tuning"
for _layout in ("partseg_from_point_mae_pretrain", "partseg_from_point_bert_pretrain", "partseg_from_act_pretrain"):
    register_absent_by_design(_layout, {f"{name}.": _HEAD_REASON for name in HEAD_MODULES})


@dataclass
class PointPartSegConfig:
    """Architecture of the part-segmentation network. Defaults are the official Point-MAE model; the registered
    builders set ``tokenizer_projection`` (Point-BERT's ``reduce_dim``) and ``checkpoint_layout`` (the official
    pre-training files it loads)."""

    task: ClassVar[str] = "partseg"

    tokenizer_projection: bool = False
    checkpoint_layout: Literal["point_mae", "point_bert", "act"] = "point_mae"
    num_parts: int = 50
    num_categories: int = 16
    num_group: int = 128
    group_size: int = 32
    trans_dim: int = 384
    encoder_dims: int | None = None  # tokenizer width: trans_dim, or 256 with tokenizer_projection (Point-BERT)
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    fetch_layers: tuple[int, ...] = field(default=(3, 7, 11))
    label_dim: int = 64
    propagation_dim: int = 1024
    head_dropout: float = 0.5
    fps_backend: FpsBackend = "auto"
    exclude_near_origin: bool = False

    def __post_init__(self) -> None:
        if self.encoder_dims is None:
            self.encoder_dims = 256 if self.tokenizer_projection else self.trans_dim
        self.fetch_layers = tuple(self.fetch_layers)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, 3), (B, S, 3) -> (B, N, S) squared distances, official expansion, clamped at 0."""
    d = -2 * torch.matmul(a, b.transpose(1, 2))
    d = d + a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(1)
    return d.clamp_min(0)


def interpolate_three_nearest(points: torch.Tensor, centres: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """points (B, N, 3), centres (B, S, 3), features (B, S, D) -> (B, N, D): inverse-squared-distance weighted
    mean over each point's three nearest centres (one centre: its feature everywhere)."""
    if centres.shape[1] == 1:
        return features.expand(-1, points.shape[1], -1)
    dist, index = squared_distances(points, centres).topk(3, dim=-1, largest=False, sorted=True)
    weight = 1.0 / (dist + 1e-8)
    weight = weight / weight.sum(dim=-1, keepdim=True)  # (B, N, 3)
    batch = torch.arange(points.shape[0], device=points.device).view(-1, 1, 1)
    return (features[batch, index] * weight.unsqueeze(-1)).sum(dim=2)


class FeaturePropagation(nn.Module):
    """PointNet++ feature propagation (keys ``mlp_convs.i``, ``mlp_bns.i``): interpolate the centres' features to
    every point, concatenate after the points' own channels, then Conv1d(k=1)-BN-ReLU per width.
    (B, N, 3), (B, S, 3), (B, N, Dp), (B, S, D) -> (B, widths[-1], N)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        for width in widths:
            self.mlp_convs.append(nn.Conv1d(in_channels, width, 1))
            self.mlp_bns.append(nn.BatchNorm1d(width))
            in_channels = width

    def forward(self, points: torch.Tensor, centres: torch.Tensor, point_features: torch.Tensor,
                centre_features: torch.Tensor) -> torch.Tensor:
        x = torch.cat([point_features, interpolate_three_nearest(points, centres, centre_features)], dim=-1)
        x = x.transpose(1, 2)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = F.relu(bn(conv(x)))
        return x


class PointPartSegmenter(nn.Module):
    """The official part-segmentation network on pcpeft's shared blocks (see the module docstring).

    ``forward(points, category)``: points (B, N, 3) or the official (B, 3, N); category (B,) indices or a one-hot
    (B, K) / the official (B, 1, K) -> log-probabilities (B, N, parts).
    """

    classifier_name = None  # no single classification head: :attr:`head_parameter_patterns` lists the head
    head_parameter_patterns = tuple(f"{name}.*" for name in HEAD_MODULES)
    token_output_module = "encoder"
    num_global_tokens = 0

    def __init__(self, config: PointPartSegConfig) -> None:
        super().__init__()
        if config.checkpoint_layout not in ("point_mae", "point_bert", "act"):
            raise ValueError(f"unknown part-segmentation checkpoint layout {config.checkpoint_layout!r}; expected "
                             f"point_mae, point_bert or act")
        check_tokenizer_width(config)
        taps = tuple(config.fetch_layers)
        if not taps or any(not -config.depth <= t < config.depth for t in taps):
            raise ValueError(f"fetch_layers {list(taps)} must be block indices of a {config.depth}-block stack")
        self.config = config
        self.num_parts, self.num_categories = config.num_parts, config.num_categories
        self.embed_dim = config.trans_dim
        attach_point_tokenizer(self, config)
        if config.tokenizer_projection:
            self.token_output_module = "reduce_dim"
        self.pos_embed = PositionalMLP(config.trans_dim)
        self.blocks = TransformerEncoder(config.trans_dim, config.depth, config.num_heads, config.mlp_ratio,
                                         qkv_bias=False, drop_path_rate=config.drop_path_rate)
        self.norm = nn.LayerNorm(config.trans_dim)
        tapped = len(taps) * config.trans_dim
        self.label_conv = nn.Sequential(nn.Conv1d(config.num_categories, config.label_dim, 1, bias=False),
                                        nn.BatchNorm1d(config.label_dim), nn.LeakyReLU(0.2))
        self.propagation_0 = FeaturePropagation(tapped + 3, (4 * config.trans_dim, config.propagation_dim))
        self.convs1 = nn.Conv1d(config.propagation_dim + 2 * tapped + config.label_dim, 512, 1)
        self.dp1 = nn.Dropout(config.head_dropout)
        self.convs2 = nn.Conv1d(512, 256, 1)
        self.convs3 = nn.Conv1d(256, config.num_parts, 1)
        self.bns1 = nn.BatchNorm1d(512)
        self.bns2 = nn.BatchNorm1d(256)

    # -- what PEFT methods read ----------------------------------------------------------------------------------
    @property
    def block_stack(self) -> BlockStack:
        return self.blocks.blocks

    @property
    def num_prefix_tokens(self) -> int:
        return self.block_stack.num_added_tokens()

    def set_head_pooling(self, pooling: nn.Module, width: int) -> None:
        """A method's classification head input: nothing to choose on a segmentation head (ignored)."""

    def enable_prompt_pooling(self) -> None:
        """A method's prompt pooling for the classification head: ignored (see :meth:`set_head_pooling`)."""

    def convert_checkpoint_state(self, state: dict[str, torch.Tensor]):
        """Official layouts -> (layout, our state, dropped keys): an official fine-tuned segmentation state (keys
        as ours), or a backbone pre-training file, whose encoder fills the tokenizer and blocks."""
        from .layouts import convert

        layout, mapped, dropped = convert(self.config.checkpoint_layout, state, 0)
        if layout.endswith("_pretrain"):
            layout = f"partseg_from_{layout}"
            # the classification model's tokens have no place here: reported with the pre-training-only keys
            extra = sorted(k for k in mapped if k.startswith(("cls_token", "cls_pos", "cls_head_finetune.")))
            mapped = {k: v for k, v in mapped.items() if k not in extra}
            if extra:
                dropped = {**dropped, "classification tokens / head, no place in the segmentation network": extra}
        return layout, mapped, dropped

    def architecture(self) -> dict:
        return asdict(self.config)

    # -- forward -------------------------------------------------------------------------------------------------
    def tokenize(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3) -> group tokens (B, G, C), centres (B, G, 3)."""
        return group_and_tokenize(self, points)

    def _patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G + added, C) -> (B, G, C): the stream without the tokens PEFT hooks inserted."""
        added = x.shape[1] - self.config.num_group
        if added == 0:
            return x
        if any(getattr(hook, "appends_tokens", False) for hook in self.block_stack.sequence_hooks):
            return x[:, :self.config.num_group]
        return torch.cat([x[:, :1], x[:, 1 + added:]], dim=1)

    def forward_features(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3) -> tapped, normalised, concatenated group features (B, G, taps*C) and centres."""
        tokens, centres = self.tokenize(points)
        streams = self.block_stack.forward_taps(tokens, self.pos_embed(centres), self.config.fetch_layers)
        return torch.cat([self.norm(self._patch_tokens(s)) for s in streams], dim=-1), centres

    def forward_head(self, points: torch.Tensor, centres: torch.Tensor, features: torch.Tensor,
                     category: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3), centres (B, G, 3), features (B, G, F), category one-hot (B, K) -> (B, N, parts)."""
        n = points.shape[1]
        label = self.label_conv(category.unsqueeze(-1))  # (B, 64, 1)
        global_features = torch.cat([features.max(dim=1).values, features.mean(dim=1)], dim=-1).unsqueeze(-1)
        propagated = self.propagation_0(points, centres, points, features)  # (B, 1024, N)
        x = torch.cat([propagated, global_features.expand(-1, -1, n), label.expand(-1, -1, n)], dim=1)
        x = self.dp1(F.relu(self.bns1(self.convs1(x))))
        x = F.relu(self.bns2(self.convs2(x)))
        return F.log_softmax(self.convs3(x), dim=1).transpose(1, 2)

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        points, category = self._inputs(points, category)
        features, centres = self.forward_features(points)
        return self.forward_head(points, centres, features, category)

    def _inputs(self, points: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Accept both the official (B, 3, N) / (B, 1, K) one-hot and pcpeft's (B, N, 3) / (B,) indices."""
        if points.dim() != 3 or 3 not in (points.shape[1], points.shape[2]):
            raise ValueError(f"{type(self).__name__} expects points (B, N, 3) or (B, 3, N), got {tuple(points.shape)}")
        if points.shape[2] != 3:
            points = points.transpose(1, 2)
        points = points.contiguous()
        k = self.num_categories
        if category.dim() == 1 and not category.is_floating_point():
            if category.numel() != points.shape[0] or bool(((category < 0) | (category >= k)).any()):
                raise ValueError(f"category indices must be {points.shape[0]} values in [0, {k}), got "
                                 f"{category.tolist()}")
            category = F.one_hot(category, k).to(points.dtype)
        else:
            category = category.reshape(points.shape[0], -1).to(points.dtype)
            if category.shape[1] != k:
                raise ValueError(f"category one-hot must have {k} entries per shape, got {category.shape[1]}")
        return points, category

    def extra_repr(self) -> str:
        config = self.config
        return f"layout={config.checkpoint_layout!r}, num_parts={self.num_parts}, taps={list(config.fetch_layers)}"


def _builder(options: dict, overrides: dict) -> PointPartSegmenter:
    return PointPartSegmenter(PointPartSegConfig(**{**options, **overrides}))


@register_model("point_mae_partseg")
def point_mae_partseg(**overrides) -> PointPartSegmenter:
    """Official Point-MAE ShapeNetPart network: 27,063,730 parameters at 50 parts (192 state-dict entries)."""
    return _builder({}, overrides)


@register_model("point_bert_partseg")
def point_bert_partseg(**overrides) -> PointPartSegmenter:
    """pcpeft composition: the Point-MAE segmentation network on Point-BERT's tokenizer (256-d + reduce_dim)."""
    return _builder({"tokenizer_projection": True, "checkpoint_layout": "point_bert"}, overrides)


@register_model("act_partseg")
def act_partseg(**overrides) -> PointPartSegmenter:
    """The Point-MAE segmentation network, loading ACT pre-training files (``ACT_encoder.*``)."""
    return _builder({"checkpoint_layout": "act"}, overrides)


for _builder_fn in (point_mae_partseg, point_bert_partseg, act_partseg):
    _builder_fn.config_class = PointPartSegConfig
