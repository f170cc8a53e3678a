#!/usr/bin/env bash
# Installs everything pcpeft needs on a fresh Debian/Ubuntu machine with Python 3.10+ (CPU is enough), into the
# virtual environment .venv/ of the checkout (so it works where the system Python is externally managed, PEP 668).
# Idempotent: re-running it only checks what is there. Afterwards run tools with .venv/bin/python, or activate
# the environment first: `source .venv/bin/activate`.
#
# System packages (Debian/Ubuntu, installed when missing, as root or through password-less sudo):
#   libusb-1.0-0                    open3d does not import without it
#   libvulkan1, mesa-vulkan-drivers Open3D's offscreen renderer on a machine without a GPU (Mesa's software Vulkan)
#   xvfb                            a virtual display: `xvfb-run python tools/visualize.py ... --interactive` on a
#                                   headless machine, and the test of the interactive window
# Without them everything works; pictures are drawn with matplotlib instead of Open3D (the tools say so).
#   chromium, chromium-driver       a headless browser for the test of `pcpeft report`'s pages (Debian's names;
#                                   installed apart, where apt has them; without them that test skips)
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(libusb-1.0-0 libvulkan1 mesa-vulkan-drivers xvfb)
PYTHON="${PYTHON:-python3}"
sudo_cmd=""  # how to run apt-get: directly as root, through password-less sudo, or not at all ("none")
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_cmd="sudo -n"; else sudo_cmd="none"; fi
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
else
  echo "setup: not a Debian/Ubuntu machine; for the Open3D renderer install the equivalents of: ${SYSTEM_PACKAGES[*]}"
fi
if ((${#missing[@]})); then
  if [ "$sudo_cmd" = "none" ]; then
    echo "setup: cannot install ${missing[*]} (not root, no password-less sudo): pictures will use matplotlib"
  else
    echo "setup: installing system packages: ${missing[*]}"
    if ! { $sudo_cmd apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      echo "setup: apt-get could not install ${missing[*]}: pictures will use matplotlib"
    fi
  fi
fi
if [ "$sudo_cmd" != "none" ] && command -v apt-get >/dev/null 2>&1 && ! command -v chromedriver >/dev/null 2>&1; then
  if { apt-cache show chromium-driver >/dev/null 2>&1 || $sudo_cmd apt-get update -qq; } &&
     apt-cache show chromium chromium-driver >/dev/null 2>&1; then
    echo "setup: installing system packages: chromium chromium-driver"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null ||
      echo "setup: apt-get could not install chromium chromium-driver: the report's browser test will skip"
  else
    echo "setup: apt has no chromium / chromium-driver here: the report's browser test will skip"
  fi
fi

# The virtual environment (Debian's python3 needs its python3-venv package for `-m venv`).
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$sudo_cmd" = "none" ]; then
      echo "setup: '$PYTHON -m venv' failed and python3-venv cannot be installed (not root, no sudo)" >&2; exit 1
    fi
    echo "setup: '$PYTHON -m venv' failed; installing the Debian package python3-venv"
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
VENV_PYTHON=.venv/bin/python
"$VENV_PYTHON" -m pip install -q -r requirements.txt
"$VENV_PYTHON" -m pip install -q --no-deps -e .
"$VENV_PYTHON" -c "import pcpeft, torch, fpsample; print(f'pcpeft {pcpeft.__version__} ready (torch {torch.__version__}) in .venv/')"
"$VENV_PYTHON" -c "from pcpeft.viz import open3d_status; works, why = open3d_status(); print(f'Open3D renderer: {\"yes\" if works else \"no\"} ({why})')"
echo "setup: done. The command: .venv/bin/pcpeft (or: source .venv/bin/activate; pcpeft --help)"
