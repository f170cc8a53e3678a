"""What every point classifier shares around its own ``forward_features`` / ``pool``: the block stack and prefix
bookkeeping PEFT methods read, official-layout conversion, and the head-input extension points."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..ops.fps import FpsBackend
from .layouts import CheckpointLayout
from .transformer import BlockStack


@dataclass
class PointBackboneConfig:
    """The options every point backbone has (each subclass adds its own).

    ``checkpoint_layout`` names the official file layouts the backbone loads (:func:`.layouts.convert`); it is set
    by each registered builder, as are the other block-family options of the subclasses."""

    num_classes: int = 40
    num_group: int = 64
    group_size: int = 32
    trans_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    head_hidden: int = 256
    head_dropout: float = 0.5
    fps_backend: FpsBackend = "auto"
    exclude_near_origin: bool = False
    checkpoint_layout: CheckpointLayout = "point_mae"


class PointClassifier(nn.Module):
    """Base of the point backbones. Subclasses set ``config`` (a :class:`PointBackboneConfig`), ``num_classes``,
    ``embed_dim``, ``num_features`` (head input width), ``num_global_tokens`` (tokens before the patches on the
    plain backbone), ``blocks`` (a TransformerEncoder),
    ``cls_head_finetune`` (a Sequential whose first layer is a Linear), and implement ``forward_features`` and
    ``forward_head``."""

    classifier_name = "cls_head_finetune"

    def __init__(self) -> None:
        super().__init__()
        self.prompt_pooling = False
        self.head_pooling: nn.Module | None = None  # set by a PEFT method (set_head_pooling)

    @property
    def block_stack(self) -> BlockStack:
        """The transformer blocks (where PEFT methods attach)."""
        return self.blocks.blocks

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens: the backbone's own (cls; ReCon's cls, img, text; PointGPT's sos, cls)
        plus the prompt tokens PEFT hooks insert after position 0."""
        return self.num_global_tokens + self.block_stack.num_added_tokens()

    def convert_checkpoint_state(self, state: dict[str, torch.Tensor]):
        """Official layouts of this backbone -> (layout, our state, dropped keys); see :mod:`.layouts`."""
        from .layouts import convert

        return convert(self.config.checkpoint_layout, state, self.num_classes)

    def _replace_head_input(self, width: int) -> None:
        first = self.cls_head_finetune[0]
        if first.in_features != width:
            self.cls_head_finetune[0] = nn.Linear(width, first.out_features)

    def set_head_pooling(self, pooling: nn.Module, width: int) -> None:
        """Let a PEFT method choose the head input: ``pooling(tokens (B, T, C), num_prefix_tokens) -> (B, width)``;
        the head's first Linear is re-created (fresh init) when its input width changes."""
        self.head_pooling = pooling
        self._replace_head_input(width)

    def enable_prompt_pooling(self) -> None:
        """Let the head also read the mean of the prompt tokens (DAPT): its first Linear widens by C, re-created."""
        if self.prompt_pooling:
            return
        self.prompt_pooling = True
        self._replace_head_input(self.num_features + self.embed_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> logits (B, classes)."""
        return self.forward_head(self.forward_features(points))

    def extra_repr(self) -> str:
        return f"layout={self.config.checkpoint_layout!r}, num_classes={self.num_classes}"

    def architecture(self) -> dict:
        """The config as a plain dict (what a checkpoint or a PEFT save records)."""
        return asdict(self.config)
