#!/usr/bin/env bash
# The host is a client of the coordinator: nothing under core/fleet/host includes a header of the
# coordinator, the config hub, the job queue or a store (CMake refuses the link itself), and no
# request path is spelled outside core/fleet/api, but for the Python package's one copy of its
# routes (python/trainvisor/routes.py, checked against the C++ header by its test) and the tests
# of the Python client, which check what it sends.
set -euo pipefail
src="$1"
bad=$(grep -rnE '#include "trainvisor/fleet/(coordinator|config_hub|telemetry_store|job_queue|coordinator_store|store/[a-z_]+)\.hpp"|#include <sqlite3.h>' \
        "$src/core/fleet/host" || true)
if [ -n "$bad" ]; then
  echo "core/fleet/host includes the server side:"; echo "$bad"; exit 1
fi
paths=$(grep -rn '"/v1/' "$src/core" "$src/shm" "$src/daemon" "$src/bench" "$src/python" \
          --include='*.cpp' --include='*.hpp' --include='*.h' --include='*.py' \
        | grep -v -e "^$src/core/fleet/api/" -e "^$src/python/trainvisor/routes.py:" \
                  -e "^$src/python/tests/" || true)
if [ -n "$paths" ]; then
  echo "request paths outside core/fleet/api:"; echo "$paths"; exit 1
fi
echo "host layering: ok"
