#!/usr/bin/python3
"""The demo's live part: a private redis-server, databrain-mock and datamartd on free loopback
ports, 200 onboarding jobs as one batch, a progress bar, and a summary. Stops what it started."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin")
JOBS = 200
INVALID = 6
TOKEN = "demo-token-not-a-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.05)
    sys.exit(f"demo: {what} did not come up within {timeout:.0f}s")


def payload(i, rng):
    tenant = f"tenant-{i:03d}"
    tables = [{"name": "orders", "schemaName": "public", "clientColumn": "tenant_id",
               "columns": [{"name": "id"}, {"name": "amount", "alias": "Amount"},
                           {"name": "revenue", "isCustomColumn": True,
                            "sql": "quantity * unit_price"}]},
              {"name": "customers", "schemaName": "public", "clientColumn": "tenant_id",
               "columns": [{"name": "id"}, {"name": "email", "isHide": True}]}]
    body = {"name": f"{tenant}-analytics", "datasourceName": "postgres-main", "tableList": tables,
            "tenancySettings": {"tenancyLevel": "TABLE", "clientColumnType": "STRING",
                                "schemaName": "public", "tableName": "tenants",
                                "tableClientNameColumn": "name", "tablePrimaryKeyColumn": "id"},
            "relationships": [{"parentTableName": "customers", "parentColumnName": "id",
                               "childTableName": "orders", "childColumnName": "customer_id",
                               "relationshipName": "customer_orders",
                               "cardinality": "OneToMany", "join": "LEFT JOIN"}]}
    if i % (JOBS // INVALID) == 7:  # a few broken ones, the way real producers get it wrong
        broken = rng.choice(["no-tables", "custom-no-sql", "bad-tenancy"])
        if broken == "no-tables":
            body["tableList"] = []
        elif broken == "custom-no-sql":
            del tables[0]["columns"][2]["sql"]
        else:
            body["tenancySettings"]["tenancyLevel"] = "ROW"
    return tenant, json.dumps(body)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    work = tempfile.mkdtemp(prefix="datamartd-demo-")
    procs = []

    def stop_all():
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)

    try:
        rport, aport = free_port(), free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
        r = redis.Redis(port=rport, decode_responses=True)
        wait_until("redis-server", r.ping)

        mock = subprocess.Popen(
            [os.path.join(BIN, "databrain-mock"), "--listen", "127.0.0.1:0", "--token", TOKEN,
             "--latency-ms", "40:30", "--error-503", "0.02", "--rate-limit", "0.01",
             "--retry-after", "1", "--seed", "7"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(mock)
        mock_addr = mock.stdout.readline().split()[-1]

        conf = os.path.join(work, "datamartd.conf")
        with open(conf, "w") as f:
            f.write(f"[redis]\nport = {rport}\n[api]\nbase_url = http://{mock_addr}\n"
                    f"max_inflight = 32\n[queue]\nconsumer = demo\nbackoff_base_ms = 200\n"
                    f"[rate_limit]\nrate = 0\n"
                    f"[admin]\nlisten = 127.0.0.1:{aport}\n[log]\nlevel = warn\n")
        env = dict(os.environ, DATAMARTD_API_TOKEN=TOKEN)
        log = open(os.path.join(work, "datamartd.log"), "w")
        procs.append(subprocess.Popen([os.path.join(BIN, "datamartd"), "-c", conf], env=env,
                                      stderr=log))
        print(f"redis-server on 127.0.0.1:{rport}, databrain-mock on {mock_addr} "
              f"(40±30 ms latency, 2 % 503s, 1 % 429s), datamartd admin on 127.0.0.1:{aport}")
        wait_until("datamartd", lambda: r.xinfo_groups("datamart:jobs"))

        batch = f"demo-{int(time.time())}"
        rng = random.Random(1)
        bulk = os.path.join(work, "onboarding.jsonl")
        with open(bulk, "w") as f:
            for i in range(JOBS):
                f.write(payload(i, rng)[1] + "\n")
        ctl = [os.path.join(BIN, "datamartctl"), "--redis", f"127.0.0.1:{rport}"]
        # --no-validate: let the daemon reject the broken ones, the way a careless producer's would be
        cmd = ctl + ["enqueue", "--batch", batch, "--job-id-field", "name", "--no-validate", bulk]
        print("$ datamartctl enqueue --batch", batch, "--job-id-field name --no-validate onboarding.jsonl")
        started_ms = int(time.time() * 1000)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"enqueued {JOBS} jobs as batch {batch}")

        counts = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = subprocess.run(ctl + ["batch", "status", batch], capture_output=True,
                                  text=True).stdout.splitlines()
            print("\r" + (line[0] if line else ""), end="", flush=True)
            counts = r.hgetall(f"datamart:batch:{batch}")
            if "finished_ms" in counts:
                break
            time.sleep(0.2)
        print()
        print(subprocess.run(ctl + ["batch", "status", batch], capture_output=True,
                             text=True).stdout.splitlines()[-1])

        latencies, failures = [], []
        for _, fields in r.xrange("datamart:results"):
            if fields.get("event") != "job":
                continue
            latencies.append(int(fields["finished_ms"]) - started_ms)
            if fields["status"] != "created":
                failures.append(fields)
        ends = [e for e in r.xrange("datamart:results") if e[1].get("event") == "batch"]
        print(f"\ncreated {counts.get('created', 0)}, failed {counts.get('failed', 0)}, "
              f"dead {counts.get('dead', 0)}  (batch event published: {'yes' if ends else 'no'})")
        if latencies:
            print(f"enqueue -> outcome latency: p50 {percentile(latencies, 50)} ms, "
                  f"p99 {percentile(latencies, 99)} ms")
        for f in failures[:8]:
            where = f" at {f['error_path']}" if "error_path" in f else ""
            print(f"  {f['job_id']}: {f['status']} {f['error_code']}{where}: {f['error_message']}")
        if "finished_ms" not in counts:
            sys.exit("demo: the batch did not finish within 60 s")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
