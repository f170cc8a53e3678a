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
    """SMoA (shared) + Prompt Generator (per block) + trainable norm2 per block + cls token + head.
    The head is the backbone's reference head (it does not read the prompts)."""
    return [SMoAConfig(), PromptGeneratorConfig(), UnfreezeConfig(patterns=(NORM2_PATTERN,))]


def dapt_x() -> list[PeftConfig]:
    """``adapter_x`` plus SSF everywhere (the paper's 3D rows are built on DAPT)."""
    return [SSFConfig(), *adapter_x()]


PRESETS: dict[str, Callable[[], list[PeftConfig]]] = {"adapter_x": adapter_x, "dapt_x": dapt_x}
