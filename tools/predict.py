"""`python tools/predict.py ARGS` is `pcpeft predict ARGS`: see `pcpeft predict --help`. For running from a checkout."""
from pcpeft.commands import tool_main

if __name__ == "__main__":
    tool_main("predict")
