#!/usr/bin/env bash
# Set up (if needed) and run SENCA-st on the bundled HER2ST A1 sample (H&E + counts).
# Writes senca_out_A1/{annotated.h5ad,clusters.csv,markers.csv,overview.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/napari-senca run sample:her2st_A1 --out senca_out_A1 --overwrite "$@"
