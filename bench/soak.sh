#!/usr/bin/env bash
# bench/run.py soak: see docs/performance.md. BUILD_DIR=build picks the build measured (built if
# missing); results go to $BUILD_DIR/bench/soak.json; arguments go to run.py soak (--help lists them).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" soak --build-dir "${BUILD_DIR:-build}" "$@"
