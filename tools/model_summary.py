"""`python tools/model_summary.py ARGS` is `pcpeft summary ARGS`:
see `pcpeft summary --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("summary")
