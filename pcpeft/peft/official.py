"""What the methods reproduced from their official code (DAPT, IDPT, PPT, PointGST) share.

* **Official key names.** A method config with an official layout declares ``official_markers`` (key substrings
  that only its fine-tuned files contain), ``official_keys(host)`` ({our key: official key} for the tensors it
  adds or renames) and optionally ``official_duplicates(host)`` ({official key: the official key holding the same
  tensor}, IDPT's twice-registered BatchNorms). Every other tensor of the PEFT model is a backbone tensor: its
  official name is our name without ``base_model.`` and without the ``.base`` of the wrappers around it (SSF).
  :func:`map_official_state` (``pcpeft.load_checkpoint``) and :func:`official_state_dict` (the converter) use it.
* **Head pooling** (:func:`set_pooling`) through the backbone's ``set_head_pooling`` extension point.
* **Positional embedding once** (:class:`PositionOnce`): DAPT adds it before the first block only.
* **Stream taps** (:class:`StreamTap`): PPT's and PointGST's branches read the block's stream after the attention
  residual (the input of ``norm2``) and add their output after the MLP residual, outside DropPath.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .base import PeftError, backbone_blocks, replace_submodule

#: the four official optimisers train every backbone parameter whose name contains ``cls`` (cls token and pos, the
#: head, and e.g. PointGPT's ``cls_norm``)
OFFICIAL_CLS = "*cls*"
DUPLICATE_REASON = "the same module registered under a second name (the official strict load keeps the other copy)"


# -- official key names ----------------------------------------------------------------------------------------
def _wrapper_prefixes(host) -> list[str]:
    """Paths (in the PeftModel) of layers wrapped by a method, deepest first: their ``.base.`` is not official."""
    names = [f"base_model.{n}" for n, m in host.base_model.named_modules()
             if getattr(m, "is_peft_layer", False) and isinstance(getattr(m, "base", None), nn.Module)]
    return sorted(names, key=len, reverse=True)


def _backbone_name(key: str, wrappers: list[str]) -> str:
    """``base_model.blocks.blocks.0.norm1.base.weight`` -> ``blocks.blocks.0.norm1.weight``."""
    changed = True
    while changed:
        changed = False
        for prefix in wrappers:
            if key.startswith(prefix + ".base."):
                key = prefix + key[len(prefix) + len(".base"):]
                changed = True
    return key[len("base_model."):] if key.startswith("base_model.") else key


def official_configs(host) -> list:
    return [c for c in host.peft_configs if getattr(c, "official_markers", ())]


def official_key_map(host) -> dict[str, str]:
    """{our state-dict key: official key} for every tensor of ``host`` (a PeftModel)."""
    mapping: dict[str, str] = {}
    for config in official_configs(host):
        mapping.update(config.official_keys(host))
    wrappers = _wrapper_prefixes(host)
    for key in host.state_dict():
        if key not in mapping:
            mapping[key] = _backbone_name(key, wrappers)
    inverse: dict[str, str] = {}
    for ours, theirs in mapping.items():
        if theirs in inverse:
            raise PeftError(f"official key {theirs!r} would hold both {inverse[theirs]!r} and {ours!r}")
        inverse[theirs] = ours
    return mapping


def official_duplicates(host) -> dict[str, str]:
    out: dict[str, str] = {}
    for config in official_configs(host):
        duplicates = getattr(config, "official_duplicates", None)
        if duplicates is not None:
            out.update(duplicates(host))
    return out


def official_layout_name(host) -> str:
    return "+".join(c.method for c in official_configs(host)) + "_official"


def map_official_state(host, state: dict[str, torch.Tensor]
                       ) -> tuple[str, dict[str, torch.Tensor], dict[str, list[str]]] | None:
    """An official fine-tuned state dict (``module.`` already stripped) -> (layout, state under our keys, keys
    dropped by reason); None when no method of ``host`` recognises the file."""
    configs = official_configs(host)
    markers = [m for c in configs for m in c.official_markers]
    if not markers or not any(m in key for key in state for m in markers):
        return None
    to_ours = {theirs: ours for ours, theirs in official_key_map(host).items()}
    duplicates = official_duplicates(host)
    mapped, dropped = {}, []
    for key, value in state.items():
        if key in to_ours:
            mapped[to_ours[key]] = value
        elif key in duplicates:
            dropped.append(key)
        else:
            mapped[key] = value  # reported as unexpected
    return official_layout_name(host), mapped, ({DUPLICATE_REASON: dropped} if dropped else {})


def official_state_dict(host) -> dict[str, torch.Tensor]:
    """``host``'s state under the official names, the official duplicates included (same tensor twice)."""
    mapping = official_key_map(host)
    out = {mapping[k]: v for k, v in host.state_dict().items()}
    for duplicate, canonical in official_duplicates(host).items():
        out[duplicate] = out[canonical]
    return out


# -- head pooling ----------------------------------------------------------------------------------------------
class TokenPooling(nn.Module):
    """Parameter-free head input of a method: ``fn(tokens (B, T, C), num_prefix_tokens) -> (B, F)``."""

    def __init__(self, name: str, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
        super().__init__()
        self.name = name
        self.fn = fn

    def forward(self, tokens: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
        return self.fn(tokens, num_prefix_tokens)

    def extra_repr(self) -> str:
        return self.name


def set_pooling(backbone: nn.Module, method: str, pooling: TokenPooling, width: int) -> None:
    setter = getattr(backbone, "set_head_pooling", None)
    if setter is None:
        raise PeftError(f"{method} chooses the head input, but {type(backbone).__name__} has no `set_head_pooling` "
                        f"extension point")
    setter(pooling, width)


# -- sequence hooks --------------------------------------------------------------------------------------------
class PositionOnce(nn.Module):
    """Sequence hook: the positional embedding reaches block 0 only (DAPT adds it once, before the blocks)."""

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        return x, (None if index == 0 else pos)

    def num_added_tokens(self, depth: int) -> int:
        return 0


class StreamTap(nn.Module):
    """Wraps a block's ``norm2``: runs ``branch`` on its input (the stream after the attention residual) and keeps
    the result, which the method's sequence hook adds to the block's output (after the MLP residual)."""

    is_peft_layer = True

    def __init__(self, base: nn.Module, branch: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.base = base
        object.__setattr__(self, "branch", branch)  # owned (and registered) by the method
        self.last_output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_output = self.branch(x)
        return self.base(x)

    def take(self) -> torch.Tensor:
        out, self.last_output = self.last_output, None
        if out is None:
            raise PeftError("stream tap: the block did not run its norm2 in this forward")
        return out


def tap_blocks(backbone: nn.Module, method: str, branch_for: Callable[[int], Callable]) -> list[StreamTap]:
    """Wrap every block's ``norm2`` with a :class:`StreamTap` running ``branch_for(block_index)``."""
    taps = []
    for index, block in enumerate(backbone_blocks(backbone)):
        if getattr(block, "num_global_tokens", 0):
            raise PeftError(f"{method} reads every token's stream, but this backbone's blocks route global tokens "
                            f"through a separate branch (ReCon); the official {method} 'on ReCon' is the Point-MAE "
                            f"architecture started from ReCon's pre-training file: use point_mae")
        tap = StreamTap(block.norm2, branch_for(index))
        replace_submodule(block, "norm2", tap)
        taps.append(tap)
    return taps


def prefix_tokens(backbone: nn.Module) -> int:
    """Tokens before the patch tokens on the plain backbone (cls; PointGPT's sos+cls)."""
    return int(getattr(backbone, "num_prefix_tokens", 1))
