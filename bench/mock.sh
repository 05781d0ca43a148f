#!/usr/bin/env bash
# Benchmark databrain-mock: keep-alive requests/s at zero latency (mock on CPU 0, wrk on CPU 1)
# and 10,000 concurrent hanging requests (the mock's peak RSS and descriptors).
# Prints a table and writes JSON. See docs/performance.md.
#   BUILD_DIR=build   the build whose bin/databrain-mock is measured (built if missing)
#   OUT=$BUILD_DIR/bench/mock.json
#   extra arguments go to bench/mock_bench.py (--duration, --connections, --hang, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
out=${OUT:-$build_dir/bench/mock.json}

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench/mock.sh: wrk is missing (apt-get install wrk, as root)" >&2
        exit 1
    fi
    echo "bench/mock.sh: installing wrk" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
fi
if [ "$(nproc)" -lt 2 ]; then
    echo "bench/mock.sh: needs two CPUs (one for the mock, one for the load)" >&2
    exit 1
fi
if [ ! -x "$build_dir/bin/databrain-mock" ]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" --target databrain-mock -j"$(nproc)" >/dev/null
fi
exec /usr/bin/python3 bench/mock_bench.py --bin-dir "$build_dir/bin" --out "$out" "$@"
