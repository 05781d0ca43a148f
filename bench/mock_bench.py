#!/usr/bin/python3
"""Benchmark databrain-mock; run it through bench/mock.sh (see docs/performance.md).

1. Keep-alive requests/s at zero latency, the mock pinned to CPU 0 and wrk to CPU 1: unique names
   (every request creates a datamart) and one repeated name (the duplicate answer).
2. N concurrent hanging requests (--hang 1): the mock's RSS and open descriptors while it holds
   them all, and how fast it notices the clients leaving.
Prints a table and writes the numbers as JSON.
"""
import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (the integration tests' process helpers)
from measure import cpu_seconds, machine, status_kib  # noqa: E402  (bench/)

TOKEN = "bench-token"
WRK_RE = re.compile(r"WRK_RESULT requests=(\d+) duration_us=(\d+) errors=(\d+) non2xx=(\d+) "
                    r"p50_us=(\d+) p99_us=(\d+)")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=10) as resp:
        return json.load(resp)


def start_mock(args, log_dir, *extra):
    return harness.start_listening(
        ["taskset", "-c", str(args.mock_cpu), Path(args.bin_dir) / "databrain-mock",
         "--listen", "127.0.0.1:0", "--token", TOKEN, *extra], log_dir, name="databrain-mock")


def throughput(args, log_dir, label, unique):
    program, _, port = start_mock(args, log_dir)
    try:
        cpu_before = cpu_seconds(program.pid)
        env = {**os.environ, "BENCH_UNIQUE": str(unique), "BENCH_TOKEN": TOKEN}
        run = subprocess.run(
            ["taskset", "-c", str(args.load_cpu), "wrk", "-t1", f"-c{args.connections}",
             f"-d{args.duration}s", "-s", ROOT / "bench" / "mock_post.lua",
             f"http://127.0.0.1:{port}{harness.API_PATH}"],
            capture_output=True, text=True, env=env, timeout=args.duration + 180)
        cpu = cpu_seconds(program.pid) - cpu_before
        match = WRK_RE.search(run.stdout)
        if run.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed: {run.stdout}{run.stderr}")
        requests, duration_us, errors, non2xx, p50, p99 = map(int, match.groups())
        after = stats(port)
        rss_kib = status_kib(program.pid, "VmHWM")
    finally:
        code = program.stop()
    if code != 0:
        raise RuntimeError(f"databrain-mock exited {code}")
    seconds = duration_us / 1e6
    return {
        "scenario": label,
        "connections": args.connections,
        "seconds": round(seconds, 2),
        "requests": requests,
        "requests_per_s": round(requests / seconds),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "transport_errors": errors,
        "non_2xx": non2xx,
        "created": after["created"],
        "duplicates": after["duplicates"],
        "mock_cpu_share": round(cpu / seconds, 2),
        "mock_cpu_us_per_request": round(cpu * 1e6 / requests, 1),
        "mock_peak_rss_mib": round(rss_kib / 1024, 1),
    }


async def hold(port, count, pid, connect_parallelism=500):
    body = json.dumps(harness.datamart_body("held")).encode()
    request = (f"POST {harness.API_PATH} HTTP/1.1\r\nHost: bench\r\n"
               f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    gate = asyncio.Semaphore(connect_parallelism)

    async def open_one():
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            return writer

    started = time.monotonic()
    writers = await asyncio.gather(*(open_one() for _ in range(count)))
    sent = time.monotonic()
    while stats(port)["hanging"] < count:
        if time.monotonic() - sent > 120:
            raise RuntimeError(f"only {stats(port)['hanging']} of {count} requests held")
        await asyncio.sleep(0.05)
    held = time.monotonic()
    during = stats(port)
    result = {
        "held": during["hanging"],
        "concurrent_requests": during["concurrent_requests"],
        "connect_and_send_s": round(sent - started, 2),
        "all_held_s": round(held - started, 2),
        "mock_rss_mib": round(status_kib(pid, "VmRSS") / 1024, 1),
        "mock_peak_rss_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
        "mock_open_fds": open_fds(pid),
    }
    for writer in writers:
        writer.close()
    released = time.monotonic()
    while stats(port)["hanging"] > 0:
        if time.monotonic() - released > 60:
            raise RuntimeError(f"{stats(port)['hanging']} requests still held after close")
        await asyncio.sleep(0.05)
    result["release_s"] = round(time.monotonic() - released, 2)
    result["mock_open_fds_after"] = open_fds(pid)
    return result


def hanging(args, log_dir):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.hang + 64:
        raise RuntimeError(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.hang} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    program, _, port = start_mock(args, log_dir, "--hang", "1")
    try:
        idle_rss = status_kib(program.pid, "VmRSS")
        result = asyncio.run(hold(port, args.hang, program.pid))
        result["mock_idle_rss_mib"] = round(idle_rss / 1024, 1)
        result["mock_kib_per_held_request"] = round(
            (result["mock_peak_rss_mib"] * 1024 - idle_rss) / args.hang, 1)
    finally:
        code = program.stop()
    if code != 0:
        raise RuntimeError(f"databrain-mock exited {code} after the hang test")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default=os.environ.get("DATAMART_BIN_DIR",
                                                            ROOT / "build" / "bin"))
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk keep-alive connections")
    parser.add_argument("--unique", type=int, default=500000,
                        help="distinct names wrk cycles through in the create run")
    parser.add_argument("--hang", type=int, default=10000, help="concurrent hanging requests")
    parser.add_argument("--mock-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.load_cpu})
    log_dir = Path(args.out).resolve().parent
    log_dir.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "throughput": [], "hang": None}
    results["throughput"].append(throughput(args, log_dir, "create (unique names)", args.unique))
    results["throughput"].append(throughput(args, log_dir, "duplicate name (400)", 1))
    results["hang"] = hanging(args, log_dir)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print(f"databrain-mock on CPU {args.mock_cpu}, load on CPU {args.load_cpu} "
          f"({results['machine']['cpu_model']}, load average "
          f"{results['machine']['load_average_at_start'][0]} at start)")
    print(f"{'scenario':<24} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'mock CPU':>8} "
          f"{'us/req':>7} {'errors':>6} {'non-2xx':>8}")
    for r in results["throughput"]:
        print(f"{r['scenario']:<24} {r['requests_per_s']:>9,} {r['p50_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['mock_cpu_share']:>8.0%} "
              f"{r['mock_cpu_us_per_request']:>7.1f} {r['transport_errors']:>6} "
              f"{r['non_2xx']:>8}")
    h = results["hang"]
    print(f"hanging: {h['held']:,} requests held ({h['all_held_s']} s to hold them all); mock RSS "
          f"{h['mock_rss_mib']} MiB (peak {h['mock_peak_rss_mib']} MiB, idle "
          f"{h['mock_idle_rss_mib']} MiB, {h['mock_kib_per_held_request']} KiB each), "
          f"{h['mock_open_fds']:,} fds; all released {h['release_s']} s after the clients left")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
