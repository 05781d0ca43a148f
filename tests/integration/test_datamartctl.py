"""Every datamartctl command against a real redis-server on a free loopback port. Where no daemon
is needed, the test writes the Redis state the daemon would write (job hashes, P:results, P:dead
entries, batch hashes) and checks what datamartctl reads and writes; the end-to-end enqueue -> wait
runs the real datamartd and databrain-mock."""
import json
import re
import select
import signal
import subprocess
import time

import pytest

import daemon_harness as dh
import harness

PREFIX = "ctltest"
GROUP = "datamartd"  # datamartctl's default group: no -c in most tests


def body(name, **extra):
    return harness.datamart_body(name, **extra)


def line(obj):
    return json.dumps(obj, separators=(",", ":"))


def invalid_body(name):
    """JSON the local validator rejects: an empty table list."""
    return line(body(name, tables=[]))


class Ctl:
    """Runs datamartctl against one Redis and prefix."""

    def __init__(self, address, prefix=PREFIX):
        self.address = address
        self.prefix = prefix

    def argv(self, *args, prefix=None):
        return [str(harness.binary("datamartctl")), "--redis", self.address,
                "--prefix", prefix or self.prefix, *map(str, args)]

    def __call__(self, *args, stdin=None, prefix=None, timeout=60):
        return subprocess.run(self.argv(*args, prefix=prefix), input=stdin, capture_output=True,
                              text=True, timeout=timeout)

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


@pytest.fixture
def ctl(redis_server):
    return Ctl(redis_server.address)


@pytest.fixture
def r(redis_server):
    return redis_server.client()


@pytest.fixture
def write(tmp_path):
    """write(text, name) -> the path of a file holding text"""
    def write_file(text, name="input.json"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write_file


def key(name):
    return f"{PREFIX}:{name}"


def entries(r, stream="jobs"):
    """[(id, {field: value})] of a stream under PREFIX"""
    return r.xrange(key(stream))


def now_ms():
    return int(time.time() * 1000)


def blocked_xread_clients(r):
    """Clients blocked in XREAD right now, from CLIENT LIST."""
    return [c for c in r.client_list() if c["cmd"] == "xread" and "b" in c["flags"]]


def xread_calls(r):
    return r.info("commandstats").get("cmdstat_xread", {}).get("calls", 0)


def finished_hash(r, job_id, status, **fields):
    """The hash the daemon leaves for a finished job."""
    outcome = {"event": "job", "job_id": job_id, "status": status, "attempts": "1",
               "finished_ms": str(now_ms()), **fields}
    r.hset(key(f"job:{job_id}"), mapping={"state": status, **outcome})
    return outcome


def publish(r, **fields):
    """An outcome event in P:results, as the daemon's publish script writes it."""
    return r.xadd(key("results"), {"event": "job", "attempts": "1", "finished_ms": str(now_ms()),
                                   **fields})


def dead_entry(r, job_id, payload, **fields):
    """A dead letter, as the daemon writes it."""
    entry = {"event": "job", "job_id": job_id, "status": "dead",
             "error_code": "INTERNAL_SERVER_ERROR", "error_message": "upstream said 500",
             "error_source": "api", "http_status": "500", "attempts": "10",
             "finished_ms": str(now_ms()), "payload": payload, **fields}
    r.hset(key(f"job:{job_id}"), mapping={"state": "dead", "status": "dead", "attempts": "10"})
    return r.xadd(key("dead"), entry)


# ==== enqueue ====

def test_enqueue_one_body_prints_its_entry_id_and_keeps_the_exact_bytes(ctl, r, write):
    text = json.dumps(body("acme-sales"), indent=2) + "\n"  # spans lines: one body, not JSONL
    proc = ctl("enqueue", write(text))
    assert proc.returncode == 0, proc.stderr
    [(entry_id, fields)] = entries(r)
    assert proc.stdout == f"{entry_id}\n"
    assert fields == {"payload": text}


def test_enqueue_reads_standard_input_and_sets_every_envelope_field(ctl, r):
    text = line(body("acme-2"))
    proc = ctl("enqueue", "--job-id", "onboard-acme-2", "--tenant", "acme corp",
               "--reply-to", "acme-replies", "-", stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "onboard-acme-2\n"
    [(_, fields)] = entries(r)
    assert fields == {"job_id": "onboard-acme-2", "tenant": "acme corp",
                      "reply_to": "acme-replies", "payload": text}


def test_enqueue_rejects_an_invalid_body_with_its_paths(ctl, r, write):
    path = write(invalid_body("bad-one"))
    proc = ctl("enqueue", path)
    assert proc.returncode == 1
    assert f"{path}: tableList: " in proc.stderr
    assert "nothing enqueued" in proc.stderr
    assert r.exists(key("jobs")) == 0


def test_jsonl_with_a_bad_line_enqueues_nothing_and_names_the_line(ctl, r, write):
    lines = [line(body(f"bulk-{i}")) for i in range(5)]
    lines[2] = invalid_body("bulk-2")
    path = write("\n".join(lines) + "\n", "bulk.jsonl")
    proc = ctl("enqueue", path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"{path}:3: tableList: " in proc.stderr
    assert "1 of 5 jobs are bad; nothing enqueued" in proc.stderr
    assert r.exists(key("jobs")) == 0

    proc = ctl("enqueue", "--skip-invalid", path)
    assert proc.returncode == 0, proc.stderr
    assert f"{path}:3: tableList: " in proc.stderr
    stored = entries(r)
    assert proc.stdout.split() == [entry_id for entry_id, _ in stored]
    assert [f["payload"] for _, f in stored] == [lines[i] for i in (0, 1, 3, 4)]


def test_jsonl_is_detected_blank_lines_and_crlf_are_skipped(ctl, r, write):
    lines = [line(body(f"crlf-{i}")) for i in range(3)]
    proc = ctl("enqueue", write("\r\n".join([lines[0], "", lines[1], "  ", lines[2]]) + "\r\n"))
    assert proc.returncode == 0, proc.stderr
    assert [f["payload"] for _, f in entries(r)] == lines


def test_jsonl_forced_for_a_one_line_file_and_a_broken_first_line(ctl, r, write):
    # without --jsonl a broken first line makes the whole input one (broken) body
    text = "{broken\n" + line(body("after-broken")) + "\n"
    proc = ctl("enqueue", write(text))
    assert proc.returncode == 1
    assert re.search(r": \$: payload is not valid JSON", proc.stderr), proc.stderr
    proc = ctl("enqueue", "--jsonl", "--skip-invalid", write(text))
    assert proc.returncode == 0, proc.stderr
    assert ":1: $: payload is not valid JSON" in proc.stderr
    assert [f["payload"] for _, f in entries(r)] == [line(body("after-broken"))]


def test_no_validate_sends_what_the_validator_would_reject(ctl, r, write):
    proc = ctl("enqueue", "--no-validate", "--jsonl", write('{"name": "x"}\nnot json\n'))
    assert proc.returncode == 0, proc.stderr
    assert [f["payload"] for _, f in entries(r)] == ['{"name": "x"}', "not json"]


def test_job_id_field_takes_ids_from_the_payload_and_refuses_repeats(ctl, r, write):
    names = ["tenant-a", "tenant-b", "tenant-c", "tenant-b"]
    path = write("\n".join(line(body(n)) for n in names) + "\n", "ids.jsonl")
    proc = ctl("enqueue", "--job-id-field", "name", path)
    assert proc.returncode == 1
    assert f"{path}:4: job_id tenant-b repeats line 2" in proc.stderr
    assert r.exists(key("jobs")) == 0

    proc = ctl("enqueue", "--job-id-field", "name", "--skip-invalid", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tenant-a", "tenant-b", "tenant-c"]
    assert [f["job_id"] for _, f in entries(r)] == ["tenant-a", "tenant-b", "tenant-c"]


def test_job_id_field_missing_or_not_an_id_is_a_bad_line(ctl, r, write):
    lines = [line(body("ok-1")), line(body("has space")), line(body("ok-2", extra_id=3))]
    path = write("\n".join(lines) + "\n")
    proc = ctl("enqueue", "--job-id-field", "extra_id", "--no-validate", path)
    assert proc.returncode == 1
    assert f"{path}:1: extra_id: missing or not a string" in proc.stderr
    assert f"{path}:3: extra_id: missing or not a string" in proc.stderr
    proc = ctl("enqueue", "--job-id-field", "name", path)
    assert proc.returncode == 1
    assert f"{path}:2: name: not a valid job_id" in proc.stderr


def test_job_id_names_one_job_only(ctl, r, write):
    path = write(line(body("a")) + "\n" + line(body("b")) + "\n")
    proc = ctl("enqueue", "--job-id", "just-one", path)
    assert proc.returncode == 2
    assert "--job-id names one job" in proc.stderr
    assert ctl("enqueue", "--job-id", "bad id!", path).returncode == 2
    assert ctl("enqueue", "--batch", "", path).returncode == 2
    assert ctl("enqueue", "--job-id", "x", "--job-id-field", "name", path).returncode == 2


def test_batch_sets_its_total_and_prints_the_batch_id(ctl, r, write):
    lines = [line(body(f"batch-{i}")) for i in range(7)]
    lines[5] = invalid_body("batch-5")
    path = write("\n".join(lines) + "\n")
    proc = ctl("enqueue", "--batch", "import-1", "--job-id-field", "name", "--skip-invalid", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "import-1\n"
    assert r.hgetall(key("batch:import-1")) == {"total": "6"}  # the enqueued ones
    stored = entries(r)
    assert [f["batch"] for _, f in stored] == ["import-1"] * 6
    assert [f["job_id"] for _, f in stored] == [f"batch-{i}" for i in (0, 1, 2, 3, 4, 6)]

    # the same batch id again would corrupt its total: refused, nothing enqueued
    other = write(line(body("later")) + "\n", "later.json")
    proc = ctl("enqueue", "--batch", "import-1", other)
    assert proc.returncode == 1
    assert "batch import-1 already exists" in proc.stderr
    assert r.xlen(key("jobs")) == 6 and r.hget(key("batch:import-1"), "total") == "6"


def test_batch_refuses_job_ids_that_are_already_known(ctl, r, write):
    # a known job_id would be a duplicate, which the daemon does not count: the batch never ends
    finished_hash(r, "known-1", "created", datamart_id="known-1")
    path = write("\n".join(line(body(n)) for n in ("new-1", "known-1")) + "\n")
    proc = ctl("enqueue", "--batch", "b-known", "--job-id-field", "name", path)
    assert proc.returncode == 1
    assert f"{path}:2: job_id known-1 is already known" in proc.stderr
    assert r.exists(key("jobs"), key("batch:b-known")) == 0


def test_bulk_enqueue_is_pipelined(ctl, r, write):
    count = 20000
    text = "".join(line(body(f"vol-{i:05d}")) + "\n" for i in range(count))
    path = write(text, "volume.jsonl")
    calls_before = r.info("stats")["total_commands_processed"]
    started = time.monotonic()
    proc = ctl("enqueue", "--batch", "vol", "--job-id-field", "name", path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    print(f"enqueue {count} jobs: {elapsed:.2f} s, {count / elapsed:.0f} jobs/s")
    assert r.xlen(key("jobs")) == count
    assert r.hget(key("batch:vol"), "total") == str(count)
    # one XADD and one EXISTS per job, a handful of others: no per-job extras
    assert r.info("stats")["total_commands_processed"] - calls_before <= 2 * count + 10
    assert [f["job_id"] for _, f in entries(r)] == [f"vol-{i:05d}" for i in range(count)]


def test_empty_input_enqueues_nothing(ctl, r):
    proc = ctl("enqueue", stdin=" \n\n")
    assert proc.returncode == 1
    assert "no job to enqueue" in proc.stderr


# ==== status ====

def test_status_shows_a_retrying_job_and_its_next_attempt(ctl, r):
    due = now_ms() + 60000
    r.hset(key("job:retry-1"), mapping={
        "state": "retrying", "attempts": "3", "next_attempt_ms": str(due),
        "last_error_code": "INTERNAL_SERVER_ERROR", "last_error_message": "boom\x1b[2J",
        "last_http_status": "503", "tenant": "acme", "payload": line(body("retry-1"))})
    proc = ctl("status", "retry-1")
    assert proc.returncode == 0, proc.stderr
    fields = dict(re.split(r"\s+", ln, maxsplit=1) for ln in proc.stdout.splitlines())
    assert fields["job_id"] == "retry-1"
    assert fields["state"] == "retrying"
    assert fields["attempts"] == "3"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due // 1000))
    assert fields["next_attempt_ms"].startswith(iso) and "(in " in fields["next_attempt_ms"]
    assert fields["last_error_message"] == "boom\\x1b[2J"  # no terminal escapes get through
    assert fields["payload"].startswith(f"{len(line(body('retry-1')))} bytes")

    as_json = json.loads(ctl("status", "--json", "retry-1").stdout)
    assert as_json == {"job_id": "retry-1", **r.hgetall(key("job:retry-1"))}


def test_status_of_a_finished_job_and_of_unknown_ones(ctl, r):
    outcome = finished_hash(r, "done-1", "failed", error_code="DATASOURCE_NAME_ERROR",
                            error_source="api", http_status="400", error_message="no such source")
    r.expire(key("job:done-1"), 3600)
    proc = ctl("status", "done-1")
    assert proc.returncode == 0
    assert re.search(r"^status\s+failed$", proc.stdout, re.M)
    assert re.search(r"^expires\s+in (59m|1h)", proc.stdout, re.M), proc.stdout
    assert json.loads(ctl("status", "--json", "done-1").stdout) == {"state": "failed", **outcome}

    r.xgroup_create(key("jobs"), GROUP, id="0", mkstream=True)  # as every daemon does
    proc = ctl("status", "nope")
    assert proc.returncode == 1
    assert proc.stderr == f"datamartctl: no job nope under prefix {PREFIX}\n"
    proc = ctl("status", "nope", prefix="typo")
    assert proc.returncode == 1
    assert "no job nope under prefix typo" in proc.stderr
    assert "nothing under prefix typo" in proc.stderr and "wrong --prefix?" in proc.stderr
    assert ctl("status", "not/an/id").returncode == 2


# ==== wait ====

def test_wait_exit_status_follows_the_outcomes(ctl, r):
    finished_hash(r, "w-created", "created", datamart_id="dm-1")
    finished_hash(r, "w-created-2", "created", datamart_id="dm-2")
    finished_hash(r, "w-failed", "failed", error_code="INVALID_TENANCY")
    finished_hash(r, "w-dead", "dead", error_code="TIMEOUT")

    proc = ctl("wait", "w-created", "w-created-2", "--timeout", "5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "w-created created datamart_id=dm-1 attempts=1",
        "w-created-2 created datamart_id=dm-2 attempts=1"]
    assert ctl("wait", "w-created", "w-failed", "--timeout", "5").returncode == 1
    proc = ctl("wait", "--json", "w-dead", "--timeout", "5")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["status"] == "dead"


def test_wait_times_out_with_exit_2_naming_the_unfinished(ctl, r):
    finished_hash(r, "t-done", "created")
    r.hset(key("job:t-active"), mapping={"state": "active", "attempts": "1"})
    started = time.monotonic()
    proc = ctl("wait", "t-done", "t-active", "t-unknown", "--timeout", "0.5")
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    assert 0.4 < elapsed < 5
    assert proc.stdout.startswith("t-done created")
    assert "timed out after 0.5s; 2 jobs not finished: t-active t-unknown" in proc.stderr
    assert ctl("wait", "t-done", "t-active", "--timeout", "0").returncode == 2


def test_wait_blocks_in_xread_and_returns_as_soon_as_the_outcome_arrives(ctl, r):
    r.hset(key("job:slow-1"), mapping={"state": "active"})
    publish(r, job_id="someone-else", status="created")  # results before the wait: ignored
    proc = ctl.popen("wait", "slow-1", "--timeout", "60")
    try:
        harness.wait_until(lambda: blocked_xread_clients(r), timeout=5,
                           message="wait blocked in XREAD")
        calls = xread_calls(r)
        time.sleep(1.0)
        assert xread_calls(r) == calls, "wait polled instead of blocking"
        assert proc.poll() is None
        publish(r, job_id="other", status="failed")  # not ours: it keeps waiting
        publish(r, job_id="slow-1", status="created", datamart_id="dm-slow")
        sent = time.monotonic()
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "slow-1 created datamart_id=dm-slow attempts=1\n"


def test_wait_counts_a_duplicate_publication_as_the_outcome(ctl, r):
    proc = ctl.popen("wait", "dup-1", "--json", "--timeout", "30")
    try:
        harness.wait_until(lambda: blocked_xread_clients(r), timeout=5, message="blocked XREAD")
        publish(r, job_id="dup-1", status="failed", error_code="DATAMART_EXISTS", duplicate="1")
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert json.loads(out)["duplicate"] == "1"


# ==== watch ====

def test_watch_from_the_start_and_from_now(ctl, r):
    publish(r, job_id="old-1", status="created", datamart_id="dm-old")
    r.xadd(key("results"), {"event": "batch", "batch": "b-old", "total": "1", "created": "1",
                            "failed": "0", "dead": "0", "finished_ms": str(now_ms())})
    proc = ctl("watch", "--from", "0", "--count", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z old-1 created "
                        r"datamart_id=dm-old attempts=1", lines[0]), lines
    assert lines[1].endswith("batch b-old finished total=1 created=1 failed=0 dead=0")

    proc = ctl.popen("watch", "--json", "--count", "1")
    try:
        harness.wait_until(lambda: blocked_xread_clients(r), timeout=5, message="blocked XREAD")
        new_id = publish(r, job_id="new-1", status="dead", error_code="TIMEOUT",
                         error_message="gave up")
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    event = json.loads(out)
    assert event["id"] == new_id and event["job_id"] == "new-1" and event["status"] == "dead"
    assert ctl("watch", "--from", "bogus").returncode == 2


def test_a_reader_that_goes_away_ends_watch_and_stats_watch_cleanly(ctl, r):
    """`datamartctl watch | head -1`: the closed pipe (EPIPE) is a normal end, exit 0."""
    publish(r, job_id="gone-1", status="created", datamart_id="dm-gone")

    def another_result():
        publish(r, job_id="gone-2", status="created", datamart_id="dm-gone-2")

    # watch writes again when a result comes; stats --watch every second
    for args, next_write in ((("watch", "--from", "0"), another_result),
                             (("stats", "--watch"), lambda: None)):
        proc = ctl.popen(*args)
        try:
            first = proc.stdout.readline()
            proc.stdout.close()
            next_write()
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert first, args
        assert code == 0, (args, proc.stderr.read())


# ==== stats ====

def test_stats_reports_queue_consumers_retry_dead_results_pause_breaker(ctl, r):
    for i in range(5):
        r.xadd(key("jobs"), {"payload": line(body(f"s-{i}"))})
    r.xgroup_create(key("jobs"), GROUP, id="0")
    r.xreadgroup(GROUP, "host-a", {key("jobs"): ">"}, count=2)
    r.xreadgroup(GROUP, "host-b", {key("jobs"): ">"}, count=1)
    due = now_ms() + 30000
    r.zadd(key("retry"), {"r-1": due, "r-2": due + 1000})
    dead_entry(r, "d-1", line(body("d-1")))
    publish(r, job_id="c-1", status="created")
    publish(r, job_id="c-2", status="created")
    publish(r, job_id="c-2", status="created", duplicate="1")
    publish(r, job_id="f-1", status="failed")
    r.set(key("paused"), "by ops@host at 2024-01-01T00:00:00.000Z: maintenance")
    r.set(key("ratelimit:breaker"), "open")

    proc = ctl("stats", "--json")
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["prefix"] == PREFIX and st["group"] == GROUP and st["group_exists"] is True
    assert st["jobs"]["length"] == 5 and st["jobs"]["pending"] == 3
    assert st["jobs"]["undelivered"] == 2
    assert sorted((c["name"], c["pending"]) for c in st["consumers"]) == [("host-a", 2),
                                                                          ("host-b", 1)]
    assert all(0 <= c["idle_ms"] < 60000 for c in st["consumers"])
    assert st["retry"] == {"count": 2, "next_due_ms": due}
    assert st["dead"] == 1
    assert st["results"]["length"] == 4
    assert (st["results"]["created"], st["results"]["failed"], st["results"]["dead"],
            st["results"]["duplicates"]) == (2, 1, 0, 1)
    assert st["paused"].endswith(": maintenance")
    assert st["breaker"] == "open"

    human = ctl("stats").stdout
    assert re.search(r"^jobs\s+length 5, undelivered 2, pending 3", human, re.M), human
    assert re.search(r"^  host-a: pending 2, idle ", human, re.M)
    assert re.search(r"^retry\s+2 waiting, next due \S+ \(in ", human, re.M)
    assert re.search(r"^paused\s+yes, by ops@host", human, re.M)
    assert re.search(r"^breaker\s+open$", human, re.M)

    r.delete(key("ratelimit:breaker"), key("paused"))
    st = json.loads(ctl("stats", "--json").stdout)
    assert st["breaker"] is None and st["paused"] is None
    assert re.search(r"^breaker\s+unknown$", ctl("stats").stdout, re.M)


def test_stats_without_a_group_and_under_a_wrong_prefix(ctl, r):
    r.xadd(key("jobs"), {"payload": "{}"})
    st = json.loads(ctl("stats", "--json").stdout)
    assert st["group_exists"] is False and st["jobs"]["undelivered"] == 1
    assert st["consumers"] == [] and st["retry"]["next_due_ms"] is None
    proc = ctl("stats", prefix="nobody")
    assert proc.returncode == 1
    assert "nothing under prefix nobody" in proc.stderr


def test_stats_watch_refreshes_every_second(ctl, r):
    r.xadd(key("jobs"), {"payload": "{}"})
    proc = ctl.popen("stats", "--watch", "--json")
    frames = []
    try:
        deadline = time.monotonic() + 10
        while len(frames) < 3 and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                frames.append(json.loads(proc.stdout.readline()))
                if len(frames) == 2:
                    r.xadd(key("jobs"), {"payload": "{}"})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert [f["jobs"]["length"] for f in frames] == [1, 1, 2]


# ==== dead letters ====

def test_dead_list_shows_entries_oldest_first(ctl, r):
    first = dead_entry(r, "dl-1", line(body("dl-1")), tenant="acme")
    second = dead_entry(r, "dl-2", line(body("dl-2")), error_code="TIMEOUT", http_status="0")
    proc = ctl("dead", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{first} ") and "dl-1 dead INTERNAL_SERVER_ERROR" in lines[0]
    assert "tenant=acme" in lines[0] and lines[0].endswith(": upstream said 500")
    assert lines[1].startswith(f"{second} ") and "dl-2 dead TIMEOUT" in lines[1]

    listed = [json.loads(ln) for ln in ctl("dead", "list", "--json").stdout.splitlines()]
    assert [d["id"] for d in listed] == [first, second]
    assert listed[0]["payload"] == line(body("dl-1"))

    proc = ctl("dead", "list", "--count", "1")
    assert len(proc.stdout.splitlines()) == 1
    assert "the oldest 1 of 2 dead jobs" in proc.stderr


def test_dead_requeue_one_is_atomic_and_resets_job_and_batch(ctl, r):
    payload = '{"name":"dq-1","datasourceName":"pg","tableList":[{"name":"t","columns":' \
              '[{"name":"id"}]}],"x":"\u00e9t\u00e9 \\u00e9"}'
    entry_id = dead_entry(r, "dq-1", payload, tenant="t\x01bin", batch="b-dq", reply_to="rq")
    other = dead_entry(r, "dq-2", line(body("dq-2")), batch="b-dq")
    r.hset(key("batch:b-dq"), mapping={"total": "3", "created": "1", "dead": "2",
                                      "finished_ms": str(now_ms())})

    proc = ctl("dead", "requeue", "dq-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "dq-1\n"
    [(_, fields)] = entries(r)
    assert fields == {"job_id": "dq-1", "tenant": "t\x01bin", "batch": "b-dq",
                      "reply_to": "rq", "payload": payload}
    assert r.exists(key("job:dq-1")) == 0  # starts afresh: attempts 0
    assert r.hgetall(key("batch:b-dq")) == {"total": "3", "created": "1", "dead": "1"}
    assert [e for e, _ in entries(r, "dead")] == [other]
    assert entry_id not in [e for e, _ in entries(r, "dead")]

    proc = ctl("dead", "requeue", "dq-1")
    assert proc.returncode == 1
    assert "no dead job dq-1" in proc.stderr


def test_dead_requeue_keeps_binary_payload_bytes(redis_server, ctl):
    raw = redis_server.client(decode_responses=False)
    payload = b'{"name":"bin-1","note":"\xff\xfe not utf-8"}'
    raw.hset(key("job:bin-1").encode(), mapping={b"state": b"dead"})
    raw.xadd(key("dead").encode(), {b"event": b"job", b"job_id": b"bin-1", b"status": b"dead",
                                    b"payload": payload})
    assert ctl("dead", "requeue", "bin-1").returncode == 0
    [(_, fields)] = raw.xrange(key("jobs").encode())
    assert fields[b"payload"] == payload


def test_dead_requeue_all_skips_jobs_enqueued_anew(ctl, r):
    for i in range(3):
        dead_entry(r, f"da-{i}", line(body(f"da-{i}")))
    busy = dead_entry(r, "da-busy", line(body("da-busy")))
    r.hset(key("job:da-busy"), "state", "active")  # enqueued again since it died
    proc = ctl("dead", "requeue", "--all")
    assert proc.returncode == 1
    assert proc.stdout.split() == ["da-0", "da-1", "da-2"]
    assert "job da-busy is active again" in proc.stderr
    assert "requeued 3 dead jobs, left 1" in proc.stderr
    assert [f["job_id"] for _, f in entries(r)] == ["da-0", "da-1", "da-2"]
    assert [e for e, _ in entries(r, "dead")] == [busy]
    assert r.hget(key("job:da-busy"), "state") == "active"


def test_dead_purge_needs_yes(ctl, r):
    dead_entry(r, "dp-1", "{}")
    dead_entry(r, "dp-2", "{}")
    proc = ctl("dead", "purge")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert r.xlen(key("dead")) == 2
    proc = ctl("dead", "purge", "--yes")
    assert proc.returncode == 0
    assert proc.stdout == "purged 2 dead jobs\n"
    assert r.xlen(key("dead")) == 0
    assert ctl("dead", "purge", "--yes").stdout == "no dead jobs\n"


# ==== batches, pause ====

def test_batch_status_counts_and_progress(ctl, r):
    r.hset(key("batch:bs-1"), mapping={"total": "8", "created": "3", "failed": "1"})
    proc = ctl("batch", "status", "bs-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == \
        "batch bs-1 [###############---------------]  50% 4/8"
    assert proc.stdout.splitlines()[1] == "created 3, failed 1, dead 0, pending 4"
    assert json.loads(ctl("batch", "status", "--json", "bs-1").stdout) == {
        "batch": "bs-1", "total": 8, "created": 3, "failed": 1, "dead": 0, "done": 4,
        "pending": 4, "finished_ms": None}
    proc = ctl("batch", "status", "no-such-batch")
    assert proc.returncode == 1
    assert f"no batch no-such-batch under prefix {PREFIX}" in proc.stderr
    assert ctl("batch", "bogus", "bs-1").returncode == 2


def test_pause_and_resume_write_the_paused_key(ctl, r):
    r.xadd(key("jobs"), {"payload": "{}"})
    proc = ctl("pause", "API", "maintenance")
    assert proc.returncode == 0, proc.stderr
    value = r.get(key("paused"))
    assert re.fullmatch(r"by \S+@\S+ at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: API maintenance",
                        value), value
    assert proc.stdout == f"paused {value}\n"
    assert "it was already paused" in ctl("pause").stdout
    proc = ctl("resume")
    assert proc.returncode == 0
    assert proc.stdout.startswith("resumed; it was paused by ")
    assert r.exists(key("paused")) == 0
    assert ctl("resume").stdout == "resumed; it was not paused\n"


# ==== errors ====

def test_unreachable_redis_exits_3_naming_the_address(tmp_path):
    port = harness.free_port()
    ctl = Ctl(f"127.0.0.1:{port}")
    for args in (["enqueue", "-"], ["status", "x"], ["wait", "x"], ["watch"], ["stats"],
                 ["dead", "list"], ["batch", "status", "b"], ["pause"], ["resume"]):
        proc = ctl(*args, stdin=line(body("x")))
        assert proc.returncode == 3, (args, proc.stderr)
        assert f"cannot connect to Redis at 127.0.0.1:{port}" in proc.stderr, args
    assert ctl("validate", "-", stdin=line(body("x"))).returncode == 0  # offline


def test_config_gives_address_password_db_and_prefix(tmp_path):
    password = "ctl-secret-pw-81f3"
    server = harness.RedisServer(tmp_path / "redis")
    server.start()
    try:
        server.client().config_set("requirepass", password)
        secret = tmp_path / "redis-password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        conf = tmp_path / "ctl.conf"
        conf.write_text(f"[redis]\nhost = 127.0.0.1\nport = {server.port}\n"
                        f"password_file = {secret}\ndb = 2\nprefix = cfgprefix\n")
        binary = str(harness.binary("datamartctl"))
        proc = subprocess.run([binary, "-c", conf, "pause", "from", "config"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        client = server.client(password=password, db=2)
        assert client.get("cfgprefix:paused").endswith(": from config")

        secret.write_text("wrong-password\n")
        proc = subprocess.run([binary, "-c", conf, "resume"], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 3
        assert f"Redis at 127.0.0.1:{server.port}: AUTH" in proc.stderr
        assert "wrong-password" not in proc.stderr + proc.stdout
        assert password not in proc.stderr + proc.stdout
    finally:
        server.stop()


def test_help_documents_the_exit_statuses():
    proc = subprocess.run([str(harness.binary("datamartctl")), "--help"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0
    for status in ("0  success", "1  not found", "2  usage", "3  Redis unreachable"):
        assert status in proc.stdout
    for command in ("enqueue", "validate", "status", "wait", "watch", "stats", "dead", "batch",
                    "pause", "resume"):
        assert re.search(rf"^  {command} ", proc.stdout, re.M), command


# ==== end to end: datamartctl + datamartd + databrain-mock ====

@pytest.fixture
def daemon(tmp_path, redis_server, mock_factory):
    """A ready datamartd under PREFIX, with the mock behind it."""
    mock = mock_factory(token=dh.TOKEN)
    config = dh.DaemonConfig(tmp_path / "datamartd.conf", redis_server.port, mock.base_url,
                             redis={"prefix": PREFIX}, queue={"group": GROUP})
    started = dh.Daemon(tmp_path, config).wait_ready()
    yield started
    assert started.stop() == 0, started.logs()[-4000:]
    started.assert_token_never_logged()


def test_enqueue_then_wait_end_to_end(ctl, r, write, daemon):
    names = [f"e2e-{i:02d}" for i in range(20)]
    path = write("\n".join(line(body(n)) for n in names) + "\n", "e2e.jsonl")
    proc = ctl("enqueue", "--batch", "e2e", "--job-id-field", "name", "--tenant", "acme", path)
    assert proc.returncode == 0, proc.stderr
    proc = ctl("wait", "--json", "--timeout", "60", *names)
    assert proc.returncode == 0, proc.stderr + daemon.logs()[-2000:]
    outcomes = {o["job_id"]: o for o in map(json.loads, proc.stdout.splitlines())}
    assert sorted(outcomes) == names
    assert all(o["status"] == "created" and o["datamart_id"] == o["job_id"] and
               o["tenant"] == "acme" and o["batch"] == "e2e" for o in outcomes.values())

    harness.wait_until(lambda: r.hget(key("batch:e2e"), "finished_ms"), timeout=10,
                       message="the batch to finish")
    proc = ctl("batch", "status", "e2e")
    assert proc.stdout.splitlines()[0].endswith("100% 20/20")
    assert "created 20, failed 0, dead 0, pending 0" in proc.stdout
    assert ctl("status", "e2e-00").returncode == 0
    events = [json.loads(ln) for ln in
              ctl("watch", "--from", "0", "--count", "21", "--json").stdout.splitlines()]
    assert events[-1]["event"] == "batch" and events[-1]["created"] == "20"

    # an invalid job ends failed: wait says 1
    proc = ctl("enqueue", "--no-validate", "--job-id", "e2e-bad", "-", stdin=invalid_body("bad"))
    assert proc.returncode == 0
    proc = ctl("wait", "e2e-bad", "--timeout", "30")
    assert proc.returncode == 1
    assert proc.stdout.startswith("e2e-bad failed INVALID_REQUEST_BODY source=local")
    st = json.loads(ctl("stats", "--json").stdout)
    assert st["group_exists"] and st["jobs"]["pending"] == 0
    assert st["results"]["created"] == 20 and st["results"]["failed"] == 1


def test_pause_holds_new_jobs_until_resume_end_to_end(ctl, daemon):
    assert ctl("pause", "e2e", "test").returncode == 0
    harness.wait_until(lambda: "paused by an operator" in daemon.logs(), timeout=10,
                       message="datamartd to see P:paused")
    proc = ctl("enqueue", "--job-id", "held-1", "-", stdin=line(body("held-1")))
    assert proc.returncode == 0, proc.stderr
    assert ctl("wait", "held-1", "--timeout", "2").returncode == 2  # not started while paused
    assert ctl("resume").returncode == 0
    proc = ctl("wait", "held-1", "--timeout", "30")
    assert proc.returncode == 0, proc.stderr + daemon.logs()[-2000:]
    assert proc.stdout.startswith("held-1 created datamart_id=held-1")
