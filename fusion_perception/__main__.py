"""``python -m fusion_perception COMMAND [options]``: the ``fusion-perception`` console script."""

import sys

from fusion_perception.commands import main

if __name__ == "__main__":
    sys.exit(main())
