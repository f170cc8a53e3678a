"""Prompt tuning: VPT-deep (learned prompts per block) and IDPT, equal to its official code.

VPT inserts its tokens right after the cls token with a zero positional embedding. IDPT
(zyh16143998882/ICCV23-IDPT, ``PointTransformer`` with ``TransformerPromptEncoderLayerI``): before block
``prompt_layer`` (the last: 11 of 12), the patch tokens as the previous block outputs them (no positional embedding, no
norm) feed a DGCNN (:mod:`.edgeconv`) that returns one prompt token; it is inserted after the cls token with its
own positional embedding ``prompt_pos``, and the remaining blocks run on ``[cls, prompt, patches]``. Head input
(``head_input``, the official ``cls_type``): ``all`` = concat(cls, prompt, max of patches) (3C, the default),
``promptonly`` = the prompt (C, the official OBJ_BG recipe), ``promptcls`` = concat(cls, prompt), ``pointcls`` =
concat(cls, max of patches).

Official quirks kept:

* the generator's BatchNorms are registered twice in the official module (``bnN`` and ``convN.1``), so the
  official file holds both copies; pcpeft registers each once (``convN.1``, the copy the official strict load
  leaves in the module), drops ``bnN`` when loading (reported) and writes it back when converting;
* ``prompt_pos`` is never trained (the official optimiser takes names containing ``cls``; ``prompt_pos`` has
  none): it stays at its initial value and is saved with the adapter;
* trained: cls token, cls pos, head and the generator (official name ``blocks.cls``): 1,696,783 on Point-MAE with
  15 classes; frozen BatchNorms keep updating their statistics in train mode, as in the official runner.

On the ViT the positional embedding is added once before the blocks, so ``prompt_pos`` is added to the prompt
when it is inserted.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from .base import NEVER_TRAINED, PeftConfig, PeftError, backbone_blocks, register_method
from .edgeconv import DGCNNPromptGenerator
from .official import OFFICIAL_CLS, TokenPooling, set_pooling
from .prompt_generator import PROMPT_CLAIM, insert_after_cls


class DeepPrompts(nn.Module):
    """VPT-deep: ``num_prompts`` learned tokens per block; block 0 inserts them, later blocks replace them."""

    def __init__(self, depth: int, num_prompts: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.num_prompts = num_prompts
        self.prompts = nn.Parameter(torch.randn(depth, num_prompts, dim) * init_std)

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        prompts = self.prompts[index].unsqueeze(0).expand(x.shape[0], -1, -1)
        if index == 0:
            return insert_after_cls(x, pos, prompts)
        return torch.cat([x[:, :1], prompts, x[:, 1 + self.num_prompts:]], dim=1), pos

    def after_block(self, index, x, pos):
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return self.num_prompts


@register_method
@dataclasses.dataclass
class VPTConfig(PeftConfig):
    """VPT-deep with ``num_prompts`` tokens per block."""

    method: ClassVar[str] = "vpt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM})

    num_prompts: int = 10

    def inject(self, backbone: nn.Module, host) -> list[str]:
        hook = DeepPrompts(len(backbone_blocks(backbone)), self.num_prompts, backbone.embed_dim)
        host.peft_modules["vpt"] = hook
        backbone.block_stack.add_sequence_hook(hook)
        return []


class InstancePrompt(nn.Module):
    """Sequence hook: before block ``at_block`` the generator turns the patch tokens into one prompt token,
    inserted after the cls token with positional embedding ``prompt_pos``. (B, T, D) -> (B, T + 1, D)."""

    def __init__(self, dim: int, at_block: int, k: int) -> None:
        super().__init__()
        self.at_block = at_block
        self.generator = DGCNNPromptGenerator(dim, k)
        self.prompt_pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        setattr(self.prompt_pos, NEVER_TRAINED, True)

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index != self.at_block:
            return x, pos
        prompt = self.generator(x[:, 1:])
        batch = x.shape[0]
        prompt_pos = self.prompt_pos.expand(batch, -1, -1)
        if pos is None:  # the ViT: positions were added once, before the blocks
            prompt = prompt + prompt_pos
            return torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1), None
        return torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1), torch.cat([pos[:, :1], prompt_pos, pos[:, 1:]], dim=1)

    def after_block(self, index, x, pos):
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return 1


def _prompt_only(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    return tokens[:, 1]


def _prompt_and_cls(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    return torch.cat([tokens[:, 0], tokens[:, 1]], dim=-1)


HEAD_INPUTS = ("all", "promptonly", "promptcls", "pointcls")


@register_method
@dataclasses.dataclass
class IDPTConfig(PeftConfig):
    """IDPT with the official defaults (ScanObjectNN hardest and ModelNet40 recipes); see the module docstring.
    The official OBJ_ONLY recipe uses ``prompt_layer=6``, OBJ_BG ``head_input="promptonly"``."""

    method: ClassVar[str] = "idpt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM})
    official_markers: ClassVar[tuple[str, ...]] = ("blocks.cls.conv1.", "prompt_pos")

    prompt_layer: int = -1  # the last block (11 of 12, the official value); negative counts from the end
    k: int = 20
    head_input: str = "all"
    update_frozen_bn_stats: bool = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        depth = len(backbone_blocks(backbone))
        if not -depth <= self.prompt_layer < depth:
            raise PeftError(f"idpt prompt_layer must be a block index in [-{depth}, {depth}), got {self.prompt_layer}")
        if self.head_input not in HEAD_INPUTS:
            raise PeftError(f"idpt head_input must be one of {HEAD_INPUTS}, got {self.head_input!r}")
        if getattr(backbone, "num_prefix_tokens", 1) > 1:  # 0: the cls-less segmentation stack
            raise PeftError("idpt reads the tokens after a single cls token; this backbone has "
                            f"{backbone.num_prefix_tokens} global tokens")
        hook = InstancePrompt(backbone.embed_dim, self.prompt_layer % depth, self.k)
        host.peft_modules["idpt"] = hook
        backbone.block_stack.add_sequence_hook(hook)
        dim = backbone.embed_dim
        if self.head_input == "all":
            backbone.enable_prompt_pooling()  # concat(cls, mean of the one prompt = the prompt, max of patches)
        elif self.head_input == "promptonly":
            set_pooling(backbone, "idpt", TokenPooling("prompt", _prompt_only), dim)
        elif self.head_input == "promptcls":
            set_pooling(backbone, "idpt", TokenPooling("cls, prompt", _prompt_and_cls), 2 * dim)
        return [OFFICIAL_CLS]

    def official_keys(self, host) -> dict[str, str]:
        """``peft_modules.idpt.generator.*`` -> ``blocks.cls.*``, ``peft_modules.idpt.prompt_pos`` -> ``prompt_pos``."""
        out = {}
        for key in host.peft_modules["idpt"].state_dict():
            theirs = "prompt_pos" if key == "prompt_pos" else "blocks.cls." + key[len("generator."):]
            out[f"peft_modules.idpt.{key}"] = theirs
        return out

    def official_duplicates(self, host) -> dict[str, str]:
        """``blocks.cls.bnN.*`` -> ``blocks.cls.convN.1.*`` (one module, two names in the official model)."""
        out = {}
        for key in host.peft_modules["idpt"].generator.state_dict():
            conv, index, leaf = key.split(".", 2)
            if index == "1":
                out[f"blocks.cls.bn{conv[len('conv'):]}.{leaf}"] = f"blocks.cls.{key}"
        return out
