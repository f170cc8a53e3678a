"""Imports every built-in method module so each registers itself."""
from . import (adapter, dapt, gaprompt, lora, most, pointgst, pointlora, ppt, prompt_generator, prompts,  # noqa: F401
               selective, smoa, ssf)
