#!/usr/bin/env bash
# Installs everything pcpeft needs on a fresh Debian/Ubuntu machine with Python 3.10+ (CPU is enough).
# Idempotent: re-running it only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -e .
python3 -c "import pcpeft, torch, fpsample; print(f'pcpeft {pcpeft.__version__} ready (torch {torch.__version__})')"
