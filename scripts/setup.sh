#!/usr/bin/env bash
# Set up a fresh Linux machine for napari-senca: system libraries for Qt/Xvfb,
# a virtual environment in .venv, and the package with its test extras.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
libxcb-xkb1 libxkbcommon-x11-0 libxcb-randr0 libxcb-shape0 libxcb-cursor0 libgl1 libegl1 libfontconfig1 libdbus-1-3"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[setup] apt-get install:$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)" >&2
  $PY -m venv .venv
fi
stamp=.venv/.senca-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] pip install -e .[testing] (torch + torchvision from the registry, ~3 GB to download the first time)" >&2
  free_kb=$(df -Pk .venv | awk 'NR==2 {print $4}')
  if [ -n "$free_kb" ] && [ "$free_kb" -lt 8000000 ]; then
    echo "[setup] warning: $((free_kb / 1000000)) GB free where .venv is; the installed packages take about 7 GB" >&2
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[testing]"
  touch "$stamp"
fi
