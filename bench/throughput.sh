#!/usr/bin/env bash
# bench/run.py throughput: see docs/performance.md. BUILD_DIR=build picks the build measured (built if
# missing); results go to $BUILD_DIR/bench/throughput.json; arguments go to run.py throughput (--help lists them).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" throughput --build-dir "${BUILD_DIR:-build}" "$@"
