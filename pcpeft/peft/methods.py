"""Imports every built-in method module so each registers itself."""
from . import (  # noqa: F401
               adapter,
               dapt,
               gaprompt,
               lora,
               most,
               pointgst,
               pointlora,
               ppt,
               prompt_generator,
               prompts,
               selective,
               smoa,
               ssf,
)
