"""``python -m napari_senca.cli``: the command line."""

import sys

from . import entry

if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
