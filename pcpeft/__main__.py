"""``python -m pcpeft ...`` is the ``pcpeft`` command."""
from .commands import main

if __name__ == "__main__":
    main()
