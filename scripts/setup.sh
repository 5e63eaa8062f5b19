#!/usr/bin/env bash
# Install everything meshforge and its tests need, from this repository's own files:
# Debian packages (referees, system libraries), the Python packages (core, plugins, test tools),
# and the Node tools (glTF-Validator, gltfpack, model-viewer) pinned in package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

APT_PACKAGES=(
  admesh          # referee: STL topology checks and repair (tests, bench)
  prusa-slicer    # referee: slices what we export (tests, bench)
  libgl1          # PyMeshLab loads libGL.so.1 even headless
  libusb-1.0-0    # open3d imports only with libusb present
  chromium        # HTML report test in a real headless browser
)
# Node may come from elsewhere (e.g. a NodeSource nodejs that bundles npm): Debian's npm would
# conflict with it, so Debian's node and npm are only installed when there is no npm at all.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
$PY -m pip install -q --upgrade pip
$PY -m pip install -q -e ".[test,dask,open3d,usdz]"
# pip compiles bytecode for what it installs, but not for an editable checkout; where
# PYTHONDONTWRITEBYTECODE is set (this image) every command would compile meshforge's modules again
$PY -m compileall -q src >/dev/null
# Plugin distributions install exactly as a third party's would: non-editable, through entry points.
for dist in plugins/*/; do
  $PY -m pip install -q "$dist"
done
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true

npm ci --no-audit --no-fund --silent
