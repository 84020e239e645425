#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: lint, manifest validation, pytest under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API=${QT_API:-pyqt6}
.venv/bin/ruff check src tests benchmarks
.venv/bin/npe2 validate napari-senca --imports
# pytest-xvfb starts a virtual X server for the napari/Qt tests
exec .venv/bin/python -m pytest "$@"
