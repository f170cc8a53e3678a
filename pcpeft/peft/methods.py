"""Imports every built-in method module so each registers itself."""
from . import adapter, dapt, lora, pointgst, ppt, prompt_generator, prompts, selective, smoa, ssf  # noqa: F401
