#!/usr/bin/env bash
# Sets up mimetic in ./.venv: a CPU build of torch first (torch==2.13.0 lies on these machines'
# disk; a plain `torch` requirement would pull a multi-GB CUDA build), then mimetic itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"

# Headless OpenGL for camera observations (MuJoCo rendering, mimetic/envs/render.py): EGL, else OSMesa.
# Installed only when missing, apt-get is there and we are root; otherwise one line says what to install.
gl_packages="libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0"
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup: not a Debian system; camera observations need EGL (libEGL with a Mesa or NVIDIA driver) or OSMesa"
else
    missing=""
    for pkg in $gl_packages; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
    done
    if [ -z "$missing" ]; then
        :
    elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } \
            || echo "setup: could not install$missing (needed to render camera observations; libosmesa6 also works)"
    else
        echo "setup: to render camera observations install the Debian packages$missing (as root: apt-get install$missing; or libosmesa6)"
    fi
fi
