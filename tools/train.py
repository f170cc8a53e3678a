"""`python tools/train.py ARGS` is `pcpeft train ARGS`: see `pcpeft train --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("train")
