#!/usr/bin/env bash
# Builds the Debian package, build/package/trainvisor_VERSION_amd64.deb, from the default
# preset's build (build/, RelWithDebInfo; the package's binaries are stripped). Install it with
# `apt-get install ./build/package/trainvisor_*.deb`, which fetches its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
[ -f build/CMakeCache.txt ] || cmake --preset default
cmake --build --preset default --parallel "${TV_JOBS:-2}"
cpack -G DEB --config build/CPackConfig.cmake -B build/package
ls -l build/package/*.deb
