"""`python tools/visualize.py ARGS` is `pcpeft viz ARGS`: see `pcpeft viz --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("viz")
