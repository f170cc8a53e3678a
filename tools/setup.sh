#!/usr/bin/env bash
# Installs everything pcpeft needs on a fresh Debian/Ubuntu machine with Python 3.10+ (CPU is enough).
# Idempotent: re-running it only checks what is there.
#
# System packages (Debian/Ubuntu, installed when missing, as root or through password-less sudo):
#   libusb-1.0-0                    open3d does not import without it
#   libvulkan1, mesa-vulkan-drivers Open3D's offscreen renderer on a machine without a GPU (Mesa's software Vulkan)
#   xvfb                            a virtual display: `xvfb-run python tools/visualize.py ... --interactive` on a
#                                   headless machine, and the test of the interactive window
# Without them everything works; pictures are drawn with matplotlib instead of Open3D (the tools say so).
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(libusb-1.0-0 libvulkan1 mesa-vulkan-drivers xvfb)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
else
  echo "setup: not a Debian/Ubuntu machine; for the Open3D renderer install the equivalents of: ${SYSTEM_PACKAGES[*]}"
fi
if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(none); fi
  fi
  if [ "${sudo[*]}" = "none" ]; then
    echo "setup: cannot install ${missing[*]} (not root, no password-less sudo): pictures will use matplotlib"
  else
    echo "setup: installing system packages: ${missing[*]}"
    if ! { "${sudo[@]}" apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      echo "setup: apt-get could not install ${missing[*]}: pictures will use matplotlib"
    fi
  fi
fi

python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -e .
python3 -c "import pcpeft, torch, fpsample; print(f'pcpeft {pcpeft.__version__} ready (torch {torch.__version__})')"
python3 -c "from pcpeft.viz import open3d_status; works, why = open3d_status(); print(f'Open3D renderer: {\"yes\" if works else \"no\"} ({why})')"
