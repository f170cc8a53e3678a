"""`python tools/convert_checkpoint.py ARGS` is `pcpeft convert ARGS`:
see `pcpeft convert --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("convert")
