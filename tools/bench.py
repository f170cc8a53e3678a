"""`python tools/bench.py ARGS` is `pcpeft bench ARGS`: see `pcpeft bench --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("bench")
