"""``python -m b12drugs``: the same as the ``b12drugs`` command."""

from .cli import main

if __name__ == "__main__":
    main()
