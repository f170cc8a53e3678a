"""Named presets: compositions of method configs (what ``get_peft_model(model, "adapter_x")`` builds)."""
from __future__ import annotations

from typing import Callable

from .base import PeftConfig
from .prompt_generator import PromptGeneratorConfig
from .selective import UnfreezeConfig
from .smoa import SMoAConfig
from .ssf import SSFConfig

#: Adapter-X's block-specific trainable LayerNorm before the MLP.
NORM2_PATTERN = "*.norm2.*"


def adapter_x() -> list[PeftConfig]:
    """SMoA (shared) + Prompt Generator (per block) + trainable norm2 per block + cls token + head: the 3D preset
    (1.88% on Point-MAE, 15 classes). The head is the backbone's reference head (it does not read the prompts)."""
    return [SMoAConfig(), PromptGeneratorConfig(), UnfreezeConfig(patterns=(NORM2_PATTERN,))]


def adapter_x_2d() -> list[PeftConfig]:
    """The 2D preset: ``adapter_x`` with the tokens split into 4 channel heads instead of 2, so that the experts
    keep the 3D preset's shape (192 -> 40 -> 192, 8 experts, router dim 32) on ViT-B/16's 768-d tokens: 168,800
    trainable without the head = 0.197% of ViT-B/16's 85,798,656 backbone parameters (paper: 0.20%)."""
    return [SMoAConfig(heads=4), PromptGeneratorConfig(), UnfreezeConfig(patterns=(NORM2_PATTERN,))]


def dapt_x() -> list[PeftConfig]:
    """``adapter_x`` plus SSF everywhere: the paper's 3D rows are built on DAPT, whose scale/shift layer ("tfts") is
    pcpeft's ``ssf`` at the same sites; DAPT's dynamic adapter and internal prompts are replaced by Adapter-X's
    SMoA and prompt generator, so this builds on ``ssf``, not on the ``dapt`` method."""
    return [SSFConfig(), *adapter_x()]


PRESETS: dict[str, Callable[[], list[PeftConfig]]] = {"adapter_x": adapter_x, "adapter_x_2d": adapter_x_2d,
                                                       "dapt_x": dapt_x}
