#!/usr/bin/env bash
# Installs the Debian 12 packages Trainvisor builds and runs with, then configures and builds the
# default preset (build/, executables in build/bin/). Idempotent: run it again at any time.
# As root on a fresh machine; as another user it uses sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
# Clones in other directories share the compiler cache (paths are made relative to the tree).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true

# Exactly what the project uses; one line per reason.
PACKAGES=(
  g++ cmake ninja-build ccache            # toolchain (ccache speeds up rebuilds and CI)
  libboost1.81-dev                        # Interprocess (shared memory), DLL (plugins); Beast/Asio later
  zlib1g-dev libssl-dev                   # gzip-compressed data sets; sha256 (and TLS later)
  libcli11-dev nlohmann-json3-dev         # the trainvisor CLI and its -o json
  libtomlplusplus-dev pkgconf             # the operator's TOML manifest
  libsqlite3-dev                          # the coordinator's job queue
  libtorch-dev libopenblas0-pthread       # the trainer and model plugins (libtorch on OpenBLAS,
                                          # 13x faster than the reference BLAS)
  dataset-fashion-mnist                   # the real data set of the mlp and cnn models
  libthrust-dev libblas-dev               # drift statistics: Thrust (OpenMP backend) and CBLAS,
                                          # which libopenblas0-pthread serves at run time
  libgtest-dev libbenchmark-dev           # tests and bench/
  python3-numpy                           # bench/: the drift benchmark's numpy baselines
  valgrind                                # memcheck shows the token comparison is constant-time
  clang-14 libclang-rt-14-dev             # libFuzzer: the fuzz preset's targets (tests/fuzz)
  python3 python3-pytest                  # the Python client's tests
  python3-dev python3-torch               # trainvisor._shmfast; PyTorch scripts as jobs (examples/python-trainer)
  openssl                                 # test certificates for the TLS tests
  chromium                                # the dashboard's browser tests (headless)
  dpkg-dev systemd                        # the .deb's dependencies (dpkg-shlibdeps); its units'
                                          # checks (systemd-analyze verify, security)
  prometheus curl                         # the metrics test scrapes GET /metrics (curl) and checks it (promtool)
)
# Node.js bundles the dashboard (web/): the machine's own when it has one, else Debian's.
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root to install ${PACKAGES[*]}"
  SUDO=(sudo)
fi
command -v apt-get >/dev/null || die "apt-get not found: this script sets up Debian 12"

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
"${SUDO[@]}" apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"

missing=()
for p in "${PACKAGES[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] || die "no installable version of: ${missing[*]} (Debian 12 'bookworm' with its updates is required)"

say "apt-get install ${PACKAGES[*]}"
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/tmp/trainvisor-apt.log 2>&1; then
  tail -20 /tmp/trainvisor-apt.log >&2
  die "apt-get install failed; full log in /tmp/trainvisor-apt.log"
fi

# The dashboard's packages, exactly as web/package-lock.json pins them; esbuild bundles them at
# build time (web/CMakeLists.txt), so nothing is fetched when the coordinator runs.
say "npm ci (web/)"
if ! (cd web && npm ci --no-audit --no-fund --loglevel=error) >/tmp/trainvisor-npm.log 2>&1; then
  tail -20 /tmp/trainvisor-npm.log >&2
  die "npm ci in web/ failed (is the npm registry reachable?); full log in /tmp/trainvisor-npm.log"
fi

say "configure and build (preset default)"
cmake --preset default >/dev/null
cmake --build --preset default --parallel "${TV_JOBS:-2}"
say "done: executables in build/bin/"
