"""`python tools/export.py ARGS` is `pcpeft export ARGS`: see `pcpeft export --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("export")
