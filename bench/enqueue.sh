#!/usr/bin/env bash
# bench/run.py enqueue: see docs/performance.md. BUILD_DIR=build picks the build measured (built if
# missing); results go to $BUILD_DIR/bench/enqueue.json; arguments go to run.py enqueue (--help lists them).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" enqueue --build-dir "${BUILD_DIR:-build}" "$@"
