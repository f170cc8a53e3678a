"""`python tools/demo.py ARGS` is `pcpeft demo ARGS`: see `pcpeft demo --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("demo")
