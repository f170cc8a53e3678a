"""`python tools/pretrain.py ARGS` is `pcpeft pretrain ARGS`:
see `pcpeft pretrain --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("pretrain")
