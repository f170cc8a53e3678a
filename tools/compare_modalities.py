"""`python tools/compare_modalities.py ARGS` is `pcpeft compare ARGS`:
see `pcpeft compare --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("compare")
