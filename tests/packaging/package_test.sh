#!/usr/bin/env bash
# The Debian package as CPack makes it from this build (scripts/package.sh's command):
#  - its control fields: name, version, architecture, Depends with the runtime libraries'
#    packages (dpkg-shlibdeps: libtorch, SQLite, OpenSSL) and adduser, python3; the maintainer
#    scripts;
#  - its files: the binary, every plugin this build made, the systemd units, the plugin header,
#    the Python package, the dashboard (when this build bundled it), the enrolment script, the
#    example settings;
#  - extracted into an empty root: its trainvisor runs, and finds the plugins installed beside it
#    (and only those);
#  - its units pass `systemd-analyze verify` against that root, and `systemd-analyze security
#    --offline` rates their exposure at most 2.0 (coordinator 1.2, host 1.6 when written: a
#    setting that loosens either fails here).
# BUILD_DIR: the build tree (its CPackConfig.cmake and plugins/).
set -euo pipefail
: "${BUILD_DIR:?the build tree}"
. "$(dirname "$0")/../daemon/process_test_lib.sh"
dir=$(mktemp -d)
trap 'test_cleanup "$dir"' EXIT
# In tenths, as --threshold takes it: 20 is an exposure level of 2.0.
max_exposure=20

step "cpack"
cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$dir/out" > "$dir/cpack.log" 2>&1 \
  || fail "cpack: $(tail -20 "$dir/cpack.log")"
debs=("$dir"/out/trainvisor_*_amd64.deb)
{ [ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ]; } || fail "no single .deb: $(ls "$dir/out")"
deb=${debs[0]}
echo "package: $(basename "$deb"), $(du -h "$deb" | cut -f1)" >&2

step "control fields"
info() { dpkg-deb --field "$deb" "$1"; }
[ "$(info Package)" = trainvisor ] || fail "Package: $(info Package)"
[ "$(info Architecture)" = amd64 ] || fail "Architecture: $(info Architecture)"
version=$(sed -n 's/^project(trainvisor VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
[ "$(info Version)" = "$version" ] || fail "Version: $(info Version), project() says $version"
depends=$(info Depends)
echo "Depends: $depends" >&2
for need in 'libtorch[0-9.]*' 'libsqlite3-0' 'libssl3' 'adduser' 'python3'; do
  grep -qE "(^|, )$need( |,|$)" <<< "$depends" || fail "Depends lacks $need: $depends"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -t > "$dir/control"
dpkg-deb --control "$deb" "$dir/DEBIAN"
for script in postinst prerm postrm; do
  grep -qx "./$script" "$dir/control" || fail "no $script in the package"
  sh -n "$dir/DEBIAN/$script" || fail "$script is not valid sh"
  [ -x "$dir/DEBIAN/$script" ] || fail "$script is not executable"
done

step "files"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$dir/files"
expect=(/usr/bin/trainvisor /usr/lib/systemd/system/trainvisor-coordinator.service
        /usr/lib/systemd/system/trainvisor-host.service /usr/include/trainvisor/plugin.hpp
        /usr/lib/python3/dist-packages/trainvisor/__init__.py
        /usr/lib/python3/dist-packages/trainvisor/trainer.py
        /usr/lib/python3/dist-packages/trainvisor/client.py
        /usr/share/trainvisor/enroll-host.sh /usr/share/doc/trainvisor/README.md
        /usr/share/doc/trainvisor/examples/coordinator.env
        /usr/share/doc/trainvisor/examples/host.env)
for p in "$BUILD_DIR"/plugins/*.so; do expect+=("/usr/lib/trainvisor/plugins/$(basename "$p")"); done
[ -f "$BUILD_DIR/web/index.html" ] && expect+=(/usr/share/trainvisor/web/index.html)
for f in "${expect[@]}"; do grep -qx "$f" "$dir/files" || fail "the package lacks $f"; done
! grep -E "^/(home|tmp|root|work)/|/build/" "$dir/files" || fail "build paths in the package"

step "extracted: it runs and finds its own plugins"
dpkg-deb -x "$deb" "$dir/root"
env -u TRAINVISOR_PLUGIN_PATH "$dir/root/usr/bin/trainvisor" --version > "$dir/version" \
  || fail "the packaged trainvisor does not run"
grep -q "$version" "$dir/version" || fail "--version: $(cat "$dir/version")"
env -u TRAINVISOR_PLUGIN_PATH "$dir/root/usr/bin/trainvisor" plugins list -o json > "$dir/plugins"
"$PY" - "$dir/plugins" "$dir/root/usr/lib/trainvisor/plugins" <<'PYEOF' || fail "plugins"
import json, os, sys
listing = json.load(open(sys.argv[1]))
assert not listing["errors"], listing["errors"]
files = {p["path"] for p in listing["plugins"]}
installed = {os.path.join(sys.argv[2], f) for f in os.listdir(sys.argv[2])}
assert files == installed, (sorted(files), sorted(installed))
PYEOF

step "systemd-analyze verify and security"
command -v systemd-analyze > /dev/null || { echo "SKIP: no systemd-analyze" >&2; exit 77; }
# The system's own units (targets the ours are wanted by) and /bin/kill (ExecReload) beside the
# package's files: verify then checks the units in a root holding only those.
mkdir -p "$dir/root/bin"
cp -rn /usr/lib/systemd/system/. "$dir/root/usr/lib/systemd/system/"
cp /bin/kill "$dir/root/bin/kill"
for unit in trainvisor-coordinator trainvisor-host; do
  path=$dir/root/usr/lib/systemd/system/$unit.service
  systemd-analyze verify --root="$dir/root" --man=no --generators=no "$path" > "$dir/verify" 2>&1 \
    || fail "verify $unit: $(cat "$dir/verify")"
  [ ! -s "$dir/verify" ] || fail "verify $unit warns: $(cat "$dir/verify")"
  systemd-analyze security --offline=yes --root="$dir/root" --threshold=$max_exposure "$path" \
    > "$dir/security" 2>&1 || fail "$unit: $(tail -1 "$dir/security") (at most 2.0)"
  grep -o 'Overall exposure level.*' "$dir/security" >&2
done
echo PASS
