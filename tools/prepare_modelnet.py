"""`python tools/prepare_modelnet.py ARGS` is `pcpeft prepare modelnet ARGS`: see `pcpeft prepare --help`. For
running from a checkout."""
import sys

from pcpeft.commands import main

if __name__ == "__main__":
    main(["prepare", "modelnet", *sys.argv[1:]])
