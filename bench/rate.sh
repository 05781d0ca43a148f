#!/usr/bin/env bash
# bench/run.py rate: see docs/performance.md. BUILD_DIR=build picks the build measured (built if
# missing); results go to $BUILD_DIR/bench/rate.json; arguments go to run.py rate (--help lists them).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" rate --build-dir "${BUILD_DIR:-build}" "$@"
