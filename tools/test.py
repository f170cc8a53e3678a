"""`python tools/test.py ARGS` is `pcpeft test ARGS`: see `pcpeft test --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("test")
