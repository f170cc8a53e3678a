"""`python tools/peft_table.py ARGS` is `pcpeft params ARGS`:
see `pcpeft params --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("params")
