#!/usr/bin/env bash
# bench/run.py publish: the publish script alone in a private redis-server, Redis CPU per job
# against the number of outcomes per call (see docs/performance.md). Results go to
# $BUILD_DIR/bench/publish.json; arguments go to run.py publish (--help lists them).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" publish --build-dir "${BUILD_DIR:-build}" "$@"
