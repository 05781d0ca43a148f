#!/usr/bin/python3
"""Benchmark datamartd end to end (issue #7); run it through bench/<name>.sh (docs/performance.md).

Subcommands, each printing a table and writing <build>/bench/<name>.json:
  throughput  N jobs queued at once; databrain-mock at latency L (+- J) pinned to one CPU;
              max_inflight C; jobs/s against the C/L bound, CPU per job of datamartd, redis-server
              and the mock and their waits for a CPU, datamartd's peak RSS, enqueue-to-outcome
              latency, Redis commands per job
  rate        rate 50/s, burst 10, for 20 s: the mean and the busiest 1-s window at the mock
  enqueue     `datamartctl enqueue` of 100,000 jobs (JSON Lines): jobs/s
  soak        1,000,000 jobs at L = 0 through one daemon: its RSS every second
  publish     the publish script alone in a private redis-server, settling B outcomes per call
              (B in 1, 4, 16, 64): Redis CPU and calls per job, to choose the daemon's batch cap
Every process is real: a private redis-server and the mock on loopback ports, datamartd from the
build. Memory is datamartd's own; CPU and the time spent waiting for one are read per process
(datamartd, redis-server, the mock) from /proc/PID, so the machine's share is never counted as
the daemon's.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (the integration tests' process helpers)
import daemon_harness  # noqa: E402
from measure import (cpu_seconds, cpu_wait_seconds, idle_seconds, machine,  # noqa: E402  (bench/)
                     rss_kib, status_kib)

TOKEN = "bench-token-0c7d9e"
PREFIX = "bench"
ENQUEUE_CHUNK = 5000
# INFO commandstats cannot tell what datamartd sent from what its scripts ran (XREADGROUP and XACK
# can be either), so the commands it sent come from its own counter in /metrics
SENT_METRIC = "datamartd_redis_commands_total{"
# what this driver sends while it measures; never counted
OWN = {"info", "xlen", "multi", "exec", "config|resetstat"}


# ==== processes and /proc ====

def fresh_dir(path):
    """An empty directory for one run's logs and data (a failed run's is kept until then)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def pinned(cpu, argv):
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class Rig:
    """A private redis-server, a databrain-mock and (start_daemon) one datamartd, all on loopback;
    close() stops them and checks the daemon and the mock exit 0."""

    def __init__(self, args, name, mock_args=()):
        self.args = args
        self.dir = fresh_dir(args.out_dir / f"{name}-run")
        self.redis = harness.RedisServer(self.dir / "redis")
        self.redis.start()
        self.raw = self.redis.client(decode_responses=False)
        self.daemon = None
        self.daemon_stdout = None
        try:
            self.mock_program, _, self.mock_port = harness.start_listening(
                pinned(args.mock_cpu, [args.bin_dir / "databrain-mock", "--listen",
                                       "127.0.0.1:0", "--token", TOKEN, *mock_args]),
                self.dir, name="mock")
        except BaseException:
            self.redis.stop()
            raise
        self.session = harness.HttpSession(harness.LOOPBACK, self.mock_port, timeout=120)

    def mock_get(self, path):
        resp = self.session.request("GET", path)
        assert resp.status == 200, resp
        return resp.json()

    def config(self, inflight, rate=0, burst=20, **settings):
        sections = {
            "api": {"max_inflight": inflight, "request_timeout_ms": 60000},
            "queue": {"results_maxlen": 1000000, "claim_idle_ms": 60000},
            "rate_limit": {"rate": rate, "burst": burst},
            "log": {"level": self.args.log_level},
        }
        for section, keys in settings.items():
            sections.setdefault(section, {}).update(keys)
        config = daemon_harness.DaemonConfig(self.dir / "datamartd.conf", self.redis.port,
                                             f"http://127.0.0.1:{self.mock_port}")
        config.settings["redis"]["prefix"] = PREFIX
        return config.update(**sections)

    def start_daemon(self, config):
        """Start datamartd (under --daemon-wrapper, if any) and wait for /readyz."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET")}
        env["DATAMARTD_API_TOKEN"] = TOKEN
        env["GNUTLS_NO_IMPLICIT_INIT"] = "1"  # as contrib/systemd/datamartd.service runs it
        argv = [*shlex.split(self.args.daemon_wrapper or ""),
                self.args.bin_dir / "datamartd", "-c", config.path]
        self.daemon_stdout = open(self.dir / "datamartd.stdout", "wb")
        self.daemon = harness.Program(pinned(self.args.daemon_cpu, argv), self.dir,
                                      name="datamartd", env=env, stdout=self.daemon_stdout)
        self.admin_port = config.admin_port
        deadline = time.monotonic() + self.args.ready_timeout
        while not self.ready():
            if not self.daemon.running() or time.monotonic() > deadline:
                raise RuntimeError(f"datamartd not ready (exit {self.daemon.proc.poll()}): "
                                   f"{self.daemon.stderr_text()[-3000:]}")
            time.sleep(0.05)

    def ready(self):
        session = harness.HttpSession(harness.LOOPBACK, self.admin_port, timeout=2)
        try:
            return session.request("GET", "/readyz").status == 200
        except OSError:
            return False
        finally:
            session.close()

    def commands_sent(self):
        """Redis commands datamartd has sent so far, over all its connections (/metrics)."""
        session = harness.HttpSession(harness.LOOPBACK, self.admin_port, timeout=10)
        try:
            resp = session.request("GET", "/metrics")
        finally:
            session.close()
        assert resp.status == 200, resp
        samples = daemon_harness.parse_metrics(resp.body.decode())
        return sum(v for k, v in samples.items() if k.startswith(SENT_METRIC))

    def enqueue(self, bodies, atomic=False):
        """XADD the bodies in one pipelined round trip, atomic: in one MULTI/EXEC, so the daemon
        sees the whole queue at once; the entry ids (str)."""
        pipe = self.raw.pipeline(transaction=atomic)
        for body in bodies:
            pipe.execute_command("XADD", f"{PREFIX}:jobs", "*", "payload", body)
        return [i.decode() for i in pipe.execute()]

    def xlen(self, key):
        return self.raw.xlen(f"{PREFIX}:{key}")

    def check_daemon(self):
        if not self.daemon.running():
            raise RuntimeError(f"datamartd exited {self.daemon.proc.returncode}: "
                               f"{self.daemon.stderr_text()[-3000:]}")

    def stop_daemon(self):
        code = self.daemon.stop(signal.SIGTERM, timeout=self.args.stop_timeout)
        self.daemon_stdout.close()
        self.daemon = None
        if code != 0:
            raise RuntimeError(f"datamartd exited {code}; see {self.dir}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Stop everything; the run's logs and data are kept only when something failed."""
        if self.daemon is not None:
            self.daemon.stop(signal.SIGKILL)
            self.daemon_stdout.close()
        self.session.close()
        code = self.mock_program.stop()
        self.redis.stop()
        if exc_type is None and code != 0:
            raise RuntimeError(f"databrain-mock exited {code}; see {self.dir}")
        if exc_type is None and not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def body(tag, i):
    """A Create Datamart body of a typical size (about 240 bytes), its name unique per run."""
    return json.dumps({
        "name": f"{tag}-{i}", "datasourceName": "postgres-main",
        "tableList": [{"name": "orders", "schemaName": "public",
                       "columns": [{"name": "id"}, {"name": "amount", "alias": "Amount"},
                                   {"name": "total", "isCustomColumn": True,
                                    "sql": "quantity * unit_price"}]}]}, separators=(",", ":"))


def commandstats(client):
    """{command: calls} from INFO commandstats (subcommands as 'xinfo|groups')."""
    info = client.info("commandstats")
    return {k[len("cmdstat_"):]: v["calls"] for k, v in info.items()}


def command_delta(before, after, jobs, sent):
    """Commands per job: `sent` by datamartd (its counter), and all Redis ran between two
    commandstats snapshots, script internals included; the driver's own MULTI of `jobs` XADDs
    (the queue) falls inside the window and is taken out."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta["xadd"] = delta.get("xadd", 0) - jobs
    delta = {k: v for k, v in delta.items() if v > 0 and k not in OWN}
    total = sum(delta.values())
    return {
        "top_level_per_job": round(sent / jobs, 3),
        "incl_script_internals_per_job": round(total / jobs, 2),
        "by_command": dict(sorted(delta.items(), key=lambda kv: -kv[1])),
    }


def read_results(client):
    """Every job event of P:results: (job_id, finished_ms, status)."""
    out, last = [], b"-"
    while True:
        chunk = client.xrange(f"{PREFIX}:results", min=last, max="+", count=10000)
        if last != b"-":
            chunk = chunk[1:]
        if not chunk:
            return out
        for entry_id, fields in chunk:
            if fields.get(b"event") == b"job":
                out.append((fields[b"job_id"].decode(), int(fields[b"finished_ms"]),
                            fields[b"status"].decode()))
        last = chunk[-1][0]


# ==== throughput ====

def throughput_one(args, latency_ms, inflight):
    tag = f"tp{latency_ms}x{inflight}"
    mock_args = ["--max-datamarts", str(args.jobs + 1000)]
    if latency_ms or args.jitter_ms:
        mock_args += ["--latency-ms", f"{latency_ms}:{args.jitter_ms}"]
    with Rig(args, tag, mock_args) as rig:
        rig.start_daemon(rig.config(inflight))
        pid = rig.daemon.pid
        # datamartd, redis-server, the mock: the order of every per-process figure below
        procs = (pid, rig.redis.program.pid, rig.mock_program.pid)
        bodies = [body(tag, i) for i in range(args.jobs)]
        if args.attach:
            attached = subprocess.Popen(shlex.split(args.attach.replace("{pid}", str(pid))),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)  # let it attach before the jobs arrive
        idle_rss = status_kib(pid, "VmRSS")
        sent_before = rig.commands_sent()
        stats_before = commandstats(rig.raw)
        cpu_before = [cpu_seconds(p) for p in procs]
        ids = rig.enqueue(bodies, atomic=True)
        # from here on only the run itself: the enqueue kept Redis busy and the daemon idle
        wait_before = [cpu_wait_seconds(p) for p in procs]
        idle_before, started = idle_seconds(), time.monotonic()
        deadline = time.monotonic() + args.timeout
        while rig.xlen("results") < args.jobs:
            rig.check_daemon()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{rig.xlen('results')}/{args.jobs} outcomes after "
                                   f"{args.timeout} s; see {rig.dir}")
            time.sleep(0.01)
        cpu_after = [cpu_seconds(p) for p in procs]
        wait_after = [cpu_wait_seconds(p) for p in procs]
        idle_share = (idle_seconds() - idle_before) / ((time.monotonic() - started) * os.cpu_count())
        stats_after = commandstats(rig.raw)
        sent = rig.commands_sent() - sent_before
        peak_rss = status_kib(pid, "VmHWM")
        anon_rss = status_kib(pid, "RssAnon")
        if args.attach:
            attached.send_signal(signal.SIGINT)
            attached.wait()
        results = read_results(rig.raw)
        arrivals = {d["name"]: d["arrival_ms"] for d in rig.mock_get("/__datamarts")["datamarts"]}
        rig.stop_daemon()

    statuses = {}
    for _, _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    finished = {job_id: ms for job_id, ms, _ in results}
    enqueued_ms = [int(i.split("-")[0]) for i in ids]
    latency = [finished[i] - e for i, e in zip(ids, enqueued_ms) if i in finished]
    service = [finished[i] - arrivals[f"{tag}-{n}"] for n, i in enumerate(ids)
               if i in finished and f"{tag}-{n}" in arrivals]
    # the window opens when the last XADD of the MULTI ran: only then can the daemon read any
    window_s = (max(finished.values()) - max(enqueued_ms)) / 1000
    rate = args.jobs / window_s
    bound = inflight * 1000 / latency_ms if latency_ms else None
    cpu = [a - b for a, b in zip(cpu_after, cpu_before)]
    wait = [a - b for a, b in zip(wait_after, wait_before)]
    return {
        "latency_ms": latency_ms,
        "jitter_ms": args.jitter_ms,
        "max_inflight": inflight,
        "jobs": args.jobs,
        "statuses": statuses,
        "seconds": round(window_s, 3),
        "jobs_per_s": round(rate),
        "bound_jobs_per_s": round(bound) if bound else None,
        "ratio": round(rate / bound, 3) if bound else None,
        "daemon_cpu_us_per_job": round(cpu[0] * 1e6 / args.jobs, 1),
        "daemon_cpu_share": round(cpu[0] / window_s, 2),
        "redis_cpu_us_per_job": round(cpu[1] * 1e6 / args.jobs, 1),
        "mock_cpu_us_per_job": round(cpu[2] * 1e6 / args.jobs, 1),
        # runnable but waiting for a CPU: the machine, not the process, held the job up
        "daemon_cpu_wait_us_per_job": round(wait[0] * 1e6 / args.jobs, 1),
        "redis_cpu_wait_us_per_job": round(wait[1] * 1e6 / args.jobs, 1),
        "mock_cpu_wait_us_per_job": round(wait[2] * 1e6 / args.jobs, 1),
        # /proc/stat counts in 10 ms ticks: a run of a few ticks can land just outside 0..1
        "machine_idle_share": round(min(max(idle_share, 0.0), 1.0), 3),
        "daemon_idle_rss_mib": round(idle_rss / 1024, 1),
        "daemon_peak_rss_mib": round(peak_rss / 1024, 1),
        "daemon_anon_rss_end_mib": round(anon_rss / 1024, 1),
        "enqueue_to_outcome_p50_ms": percentile(latency, 50),
        "enqueue_to_outcome_p99_ms": percentile(latency, 99),
        "arrival_to_outcome_p50_ms": percentile(service, 50) if service else None,
        "arrival_to_outcome_p99_ms": percentile(service, 99) if service else None,
        "redis_commands": command_delta(stats_before, stats_after, args.jobs, sent),
    }


def dash_or(value, spec):
    return "-" if value is None else format(value, spec)


def median_run(runs):
    """One run whose every number is the median over runs (CPU per job with its range)."""
    def med(key, pick=lambda r, k: r[k]):
        values = [pick(r, key) for r in runs]
        return None if values[0] is None else statistics.median(values)

    out = dict(runs[0])
    for key, value in runs[0].items():
        if key not in ("latency_ms", "jitter_ms", "max_inflight", "jobs") \
                and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = med(key)
    out["redis_commands"] = {
        k: med(k, lambda r, k: r["redis_commands"][k])
        for k in ("top_level_per_job", "incl_script_internals_per_job")}
    cpu = [r["daemon_cpu_us_per_job"] for r in runs]
    out["daemon_cpu_us_per_job_range"] = [min(cpu), max(cpu)]
    out["repeats"] = len(runs)
    return out


def throughput(args):
    scenarios = []
    for lat in args.latency_ms:
        for c in args.inflight:
            runs = [throughput_one(args, lat, c) for _ in range(args.repeat)]
            scenarios.append({"median": median_run(runs), "runs": runs})
    print(f"throughput: {args.jobs:,} jobs queued at once; mock on CPU {args.mock_cpu}, answering "
          f"after L +- {args.jitter_ms} ms; daemon log level {args.log_level}; median of "
          f"{args.repeat} run(s)")
    print(f"{'L ms':>4} {'C':>4} {'jobs/s':>8} {'C/L':>7} {'ratio':>6} {'us/job':>7} "
          f"{'redis':>6} {'mock':>5} {'RSS MiB':>7} {'anon':>5} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'svc p50':>7} {'svc p99':>7} {'cmd/job':>7} {'+lua':>5} {'wait d/r/m':>14} {'idle':>5}  "
          f"statuses")
    for scenario in scenarios:
        r = scenario["median"]
        rc = r["redis_commands"]
        wait = "/".join(f"{r[k + '_cpu_wait_us_per_job']:.0f}" for k in ("daemon", "redis", "mock"))
        print(f"{r['latency_ms']:>4} {r['max_inflight']:>4} {r['jobs_per_s']:>8,.0f} "
              f"{dash_or(r['bound_jobs_per_s'], ',.0f'):>7} {dash_or(r['ratio'], '.1%'):>6} "
              f"{r['daemon_cpu_us_per_job']:>7.1f} {r['redis_cpu_us_per_job']:>6.1f} "
              f"{r['mock_cpu_us_per_job']:>5.1f} {r['daemon_peak_rss_mib']:>7.1f} "
              f"{r['daemon_anon_rss_end_mib']:>5.1f} "
              f"{r['enqueue_to_outcome_p50_ms']:>7} {r['enqueue_to_outcome_p99_ms']:>7} "
              f"{r['arrival_to_outcome_p50_ms']:>7} {r['arrival_to_outcome_p99_ms']:>7} "
              f"{rc['top_level_per_job']:>7.2f} {rc['incl_script_internals_per_job']:>5.1f} "
              f"{wait:>14} {r['machine_idle_share']:>5.0%}  {r['statuses']}")
    print("us/job: CPU (user+sys) per job of datamartd, redis-server and the mock; p50/p99: "
          "enqueue (entry id) to finished_ms; svc: mock arrival to finished_ms; cmd/job: Redis "
          "commands datamartd sent (its datamartd_redis_commands_total), +lua: all Redis ran "
          "(INFO commandstats), its scripts' calls included; RSS: peak (VmHWM), "
          "anon: anonymous (private) RSS at the end, the rest being shared library pages; "
          "wait d/r/m: us per job datamartd, redis-server and the mock were ready to run but "
          "waited for a CPU (schedstat); idle: the machine's idle CPU share during the run")
    return {"scenarios": scenarios}


# ==== publish ====

def publish_one(args, batch):
    """Redis CPU per job for `args.jobs` outcomes published B at a time, in the daemon's steady
    state: `args.inflight` entries held, each publish reading and claiming as many as it frees."""
    server = harness.RedisServer(fresh_dir(args.out_dir / f"publish{batch}-run") / "redis")
    server.start()
    try:
        r = server.client()
        jobs, results, group = f"{PREFIX}:jobs", f"{PREFIX}:results", "datamartd"
        r.xgroup_create(jobs, group, id="0", mkstream=True)
        for start in range(0, args.jobs + args.inflight, ENQUEUE_CHUNK):
            pipe = r.pipeline(transaction=False)
            for i in range(start, min(start + ENQUEUE_CHUNK, args.jobs + args.inflight)):
                pipe.xadd(jobs, {"job_id": f"j{i}", "payload": body("publish", i)})
            pipe.execute()
        claim = r.register_script(harness.daemon_script("claim"))
        publish = r.register_script(harness.daemon_script("publish"))
        held = []
        for entry, fields in r.xreadgroup(group, "c1", {jobs: ">"}, count=args.inflight)[0][1]:
            claim(keys=[f"{PREFIX}:job:{fields['job_id']}", jobs],
                  args=[group, entry, "c1", 1000, "n0"])
            held.append((entry, fields["job_id"]))
        before, cpu0 = commandstats(r), cpu_seconds(server.program.pid)
        nonce, done = 1, 0
        while done < args.jobs:
            settle, held = held[:batch], held[batch:]
            keys = [jobs, results, f"{PREFIX}:retry", f"{PREFIX}:dead"]
            argv = [group, "c1", 3600, 10000, 60, 2000, len(settle), len(settle),
                    f"{PREFIX}:job:", "c1:1:", nonce, len(settle)]
            for entry, job_id in settle:
                outcome = ["event", "job", "job_id", job_id, "status", "created",
                           "datamart_id", f"dm-{job_id}", "http_status", "200", "attempts", "1",
                           "finished_ms", "2000"]
                keys += [f"{PREFIX}:job:{job_id}", jobs, jobs]
                argv += [entry, "final", "", "", "created", job_id, "", "", "1",
                         len(outcome) // 2, *outcome]
            verdicts, *read = publish(keys=keys, args=argv)
            assert verdicts == ["ok"] * len(settle), verdicts
            held += [(e[0], e[3]) for e in (read[0] if read else [])]
            nonce += len(settle)
            done += len(settle)
        cpu = cpu_seconds(server.program.pid) - cpu0
        calls = sum(v for k, v in commandstats(r).items() if k not in OWN) - sum(
            v for k, v in before.items() if k not in OWN)
        return {"batch": batch, "jobs": done, "redis_cpu_us_per_job": round(cpu / done * 1e6, 1),
                "evalsha_per_job": round(1 / batch, 3),
                "redis_calls_per_job": round(calls / done, 2)}
    finally:
        server.stop()


def publish_bench(args):
    runs = [publish_one(args, b) for b in args.batch]
    print(f"publish: {args.jobs:,} outcomes through publish.lua, {args.inflight} entries held; "
          f"each call reads and claims as many entries as it frees")
    print(f"{'batch':>5} {'redis us/job':>12} {'calls/job':>9}")
    for r in runs:
        print(f"{r['batch']:>5} {r['redis_cpu_us_per_job']:>12.1f} {r['redis_calls_per_job']:>9.2f}")
    print("redis us/job: redis-server's CPU (user+sys) over the publishes; calls/job: every "
          "command it ran (INFO commandstats), the scripts' own calls included")
    return {"runs": runs}


# ==== rate ====

def rate(args):
    jobs = int(args.rate * args.duration + args.burst) * 2
    with Rig(args, "rate") as rig:
        rig.start_daemon(rig.config(args.inflight, rate=args.rate, burst=args.burst))
        rig.enqueue([body("rate", i) for i in range(jobs)], atomic=True)
        started = time.monotonic()
        while time.monotonic() - started < args.duration + 1.5:
            rig.check_daemon()
            time.sleep(0.2)
        arrivals = sorted(d["arrival_ms"] for d in rig.mock_get("/__datamarts")["datamarts"])
        rig.stop_daemon()
    t0 = arrivals[0]
    inside = [a for a in arrivals if a < t0 + args.duration * 1000]
    busiest, j = 0, 0
    for i, a in enumerate(inside):  # every 1-s window that starts at an arrival
        while j < len(inside) and inside[j] < a + 1000:
            j += 1
        busiest = max(busiest, j - i)
    per_second = [sum(1 for a in inside if t0 + s * 1000 <= a < t0 + (s + 1) * 1000)
                  for s in range(args.duration)]
    result = {
        "rate": args.rate, "burst": args.burst, "seconds": args.duration,
        "requests": len(inside),
        "mean_per_s": round(len(inside) / args.duration, 2),
        "expected_mean_per_s": round(args.rate + args.burst / args.duration, 2),
        "busiest_1s_window": busiest,
        "expected_busiest": int(args.rate + args.burst),
        "per_second": per_second,
    }
    print(f"rate {args.rate}/s, burst {args.burst}, {args.duration} s from the first request: "
          f"{result['requests']} requests, mean {result['mean_per_s']}/s (ideal "
          f"{result['expected_mean_per_s']}), busiest 1-s window {busiest} (ideal at most "
          f"{result['expected_busiest']})")
    print(f"per second: {per_second}")
    return result


# ==== enqueue ====

def enqueue(args):
    ctl = args.bin_dir / "datamartctl"
    rig_dir = fresh_dir(args.out_dir / "enqueue-run")
    server = harness.RedisServer(rig_dir / "redis").start()
    try:
        source = rig_dir / "jobs.jsonl"
        source.write_text("".join(body("enq", i) + "\n" for i in range(args.jobs)))
        before = os.times()
        started = time.monotonic()
        run = subprocess.run(pinned(args.ctl_cpu, [ctl, "--redis", server.address, "--prefix",
                                                   PREFIX, "enqueue", "--jsonl", source]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seconds = time.monotonic() - started
        after = os.times()
        queued = server.client().xlen(f"{PREFIX}:jobs")
    finally:
        server.stop()
    if run.returncode != 0 or queued != args.jobs:
        raise RuntimeError(f"datamartctl enqueue exited {run.returncode}, {queued} queued: "
                           f"{run.stderr.decode()[-2000:]}")
    size = source.stat().st_size
    shutil.rmtree(rig_dir, ignore_errors=True)
    cpu = (after.children_user - before.children_user) + (after.children_system -
                                                          before.children_system)
    result = {"jobs": args.jobs, "bytes": size, "seconds": round(seconds, 3),
              "jobs_per_s": round(args.jobs / seconds),
              "ctl_cpu_us_per_job": round(cpu * 1e6 / args.jobs, 2),
              "ids_printed": run.stdout.count(b"\n")}
    print(f"datamartctl enqueue --jsonl: {args.jobs:,} jobs ({result['bytes'] / 1e6:.1f} MB) in "
          f"{seconds:.2f} s: {result['jobs_per_s']:,} jobs/s; datamartctl CPU "
          f"{result['ctl_cpu_us_per_job']} us per job")
    return result


# ==== soak ====

def soak(args):
    samples = []
    with Rig(args, "soak", ["--max-datamarts", str(args.jobs + 1000)]) as rig:
        rig.start_daemon(rig.config(args.inflight, queue={"result_ttl_s": 60,
                                                          "results_maxlen": 10000}))
        pid = rig.daemon.pid
        cpu_before = cpu_seconds(pid)
        enqueued = 0
        started = time.monotonic()
        next_sample = started
        deadline = started + args.timeout
        while True:
            backlog = rig.xlen("jobs")
            done = enqueued - backlog
            if enqueued < args.jobs and backlog < args.backlog:
                count = min(ENQUEUE_CHUNK, args.jobs - enqueued)
                rig.enqueue([body("soak", enqueued + i) for i in range(count)])
                enqueued += count
                continue
            if time.monotonic() >= next_sample:
                samples.append({"t_s": round(time.monotonic() - started, 1), "done": done,
                                "rss_kib": rss_kib(pid)})
                next_sample += 1.0
            if done >= args.jobs:
                break
            rig.check_daemon()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done}/{args.jobs} jobs after {args.timeout} s")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        peak = status_kib(pid, "VmHWM")
        samples.append({"t_s": round(seconds, 1), "done": args.jobs, "rss_kib": rss_kib(pid)})
        stats = rig.mock_get("/__stats")
        rig.stop_daemon()
    rss = [s["rss_kib"] for s in samples]
    warm = [s["rss_kib"] for s in samples if s["done"] >= args.jobs // 10]
    result = {
        "jobs": args.jobs, "max_inflight": args.inflight, "seconds": round(seconds, 1),
        "jobs_per_s": round(args.jobs / seconds),
        "daemon_cpu_us_per_job": round(cpu * 1e6 / args.jobs, 1),
        "mock_created": stats["created"],
        "rss_first_mib": round(rss[0] / 1024, 2), "rss_last_mib": round(rss[-1] / 1024, 2),
        "rss_max_mib": round(max(rss) / 1024, 2), "peak_rss_vmhwm_mib": round(peak / 1024, 2),
        "rss_after_warmup_min_mib": round(min(warm) / 1024, 2) if warm else None,
        "rss_after_warmup_max_mib": round(max(warm) / 1024, 2) if warm else None,
        "samples": samples,
    }
    print(f"soak: {args.jobs:,} jobs at L = 0, C = {args.inflight}, in {seconds:.0f} s "
          f"({result['jobs_per_s']:,} jobs/s, {result['daemon_cpu_us_per_job']} us CPU per job); "
          f"mock created {stats['created']:,}")
    print(f"datamartd RSS (MiB), sampled every second: first {result['rss_first_mib']}, last "
          f"{result['rss_last_mib']}, max {result['rss_max_mib']} (VmHWM "
          f"{result['peak_rss_vmhwm_mib']}); after the first 10 % of jobs: "
          f"{result['rss_after_warmup_min_mib']} .. {result['rss_after_warmup_max_mib']}")
    return result


# ==== main ====

def build_if_missing(build_dir, targets):
    bin_dir = build_dir / "bin"
    missing = [t for t in targets if not (bin_dir / t).exists()]
    if missing:
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", build_dir, "--target", *missing, "-j",
                        str(os.cpu_count())], check=True, stdout=subprocess.DEVNULL)
    return bin_dir


def int_list(text):
    return [int(x) for x in text.split(",")]


def main():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--build-dir", type=Path,
                        default=Path(os.environ.get("BUILD_DIR", ROOT / "build")),
                        help="the build measured (built if a program is missing)")
    common.add_argument("--out", type=Path, help="JSON file (default BUILD/bench/NAME.json)")
    common.add_argument("--mock-cpu", type=int, default=0, help="the mock's CPU (taskset)")
    common.add_argument("--daemon-cpu", type=int, help="pin datamartd to this CPU")
    common.add_argument("--ctl-cpu", type=int, help="pin datamartctl to this CPU")
    common.add_argument("--log-level", default="info", help="datamartd's [log] level")
    common.add_argument("--daemon-wrapper", help="run datamartd under this (valgrind ...)")
    common.add_argument("--keep", action="store_true",
                        help="keep each run's directory (logs, Redis data) after a success")
    common.add_argument("--ready-timeout", type=float, default=20)
    common.add_argument("--stop-timeout", type=float, default=30)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("throughput", parents=[common],
                       help="jobs/s, CPU and RSS per job, latency, Redis commands")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--latency-ms", type=int_list, default=[0, 20], help="e.g. 0,20")
    p.add_argument("--jitter-ms", type=int, default=0,
                   help="the mock answers after L +- J ms, uniform (C/L stays at the mean L)")
    p.add_argument("--inflight", type=int_list, default=[64, 256], help="e.g. 64,256")
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario; medians reported")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--attach", help="run this during the run, {pid} being datamartd's, and "
                   "stop it with SIGINT: 'perf record -g -p {pid}', 'strace -c -p {pid}'")
    p = sub.add_parser("rate", parents=[common],
                       help="rate 50, burst 10 for 20 s: mean and busiest 1-s window")
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--burst", type=int, default=10)
    p.add_argument("--duration", type=int, default=20)
    p.add_argument("--inflight", type=int, default=64)
    p = sub.add_parser("enqueue", parents=[common], help="datamartctl bulk enqueue: jobs/s")
    p.add_argument("--jobs", type=int, default=100000)
    p = sub.add_parser("soak", parents=[common],
                       help="a long run at L = 0: datamartd's RSS every second")
    p.add_argument("--jobs", type=int, default=1000000)
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--backlog", type=int, default=20000, help="queue refilled below this")
    p.add_argument("--timeout", type=float, default=3600)
    p = sub.add_parser("publish", parents=[common],
                       help="the publish script alone: Redis CPU per job against batch size")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--batch", type=int_list, default=[1, 4, 16, 64], help="e.g. 1,16")
    p.add_argument("--inflight", type=int, default=64)
    args = parser.parse_args()

    args.build_dir = args.build_dir.resolve()
    targets = {"enqueue": ["datamartctl"], "publish": []}.get(args.bench,
                                                              ["datamartd", "databrain-mock"])
    args.bin_dir = build_if_missing(args.build_dir, targets)
    args.out = (args.out or args.build_dir / "bench" / f"{args.bench}.json").resolve()
    args.out_dir = args.out.parent
    args.out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    result = {"throughput": throughput, "rate": rate, "enqueue": enqueue, "soak": soak,
              "publish": publish_bench}[
        args.bench](args)
    result = {"bench": args.bench, "machine": info, "build": str(args.build_dir),
              "log_level": args.log_level, **result}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
