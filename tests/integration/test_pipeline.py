"""The daemon's job pipeline (issue #4), black-box: a real redis-server on a free loopback port, the
real databrain-mock and the real datamartd, driven only through Redis, HTTP, signals and files."""
import calendar
import json
import re
import signal
import time
from types import SimpleNamespace

import pytest

import daemon_harness as dh
import harness

TOKEN = dh.TOKEN
JOBS = f"{dh.PREFIX}:jobs"


def body(name, datasource="postgres-main", **extra):
    return harness.datamart_body(name, datasource, **extra)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def unusual_payload(i, name):
    """A valid body for name in one of six unusual but valid spellings."""
    b = body(name)
    kind = i % 6
    if kind == 0:
        return compact(b)
    if kind == 1:
        return json.dumps(b, indent=2) + "\n"
    if kind == 2:  # reversed key order, blanks everywhere
        return ('{ "tableList" : [ { "columns" : [ { "name" : "id" } ] , "name" : "orders" } ] ,'
                ' "datasourceName" : "postgres-main" , "name" : "%s" }' % name)
    if kind == 3:  # \u escapes, a surrogate pair, escaped quote, backslash and slash
        escaped = name.replace("-", "\\u002d", 1)
        return ('{"name":"%s","datasourceName":"postgres\\u002dmain","tableList":[{"name":"orders",'
                '"label":"\\u00e9t\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/","columns":[{"name":"id",'
                '"alias":"\\u0049\\u0044"}]}]}' % escaped)
    if kind == 4:  # raw UTF-8
        b["tableList"][0]["label"] = "Umsätze ☃ 😀 日本"
        return json.dumps(b, ensure_ascii=False)
    # unknown keys at every level, odd numbers, tabs and CRs, trailing blanks
    return ('\t{\n\r"x-meta": {"n": 1.50e2, "neg": -0, "list": [null, true, false, [], {}]},\n'
            '"name":\t"%s", "tableList": [{"name": "orders", "x-hint": "keep",\n'
            '  "columns": [{"name": "id", "isAggregate": true, "isHide": false}]}],\n'
            '"datasourceName": "postgres-main", "x-empty": ""}\n  ' % name)


def invalid_payload(name):
    """JSON the local validator rejects: an empty column list."""
    return compact(body(name, tables=[{"name": "orders", "columns": []}]))


def created(job_id, name, **echo):
    """The exact fields of a `created` outcome after one attempt (finished_ms checked apart)."""
    return {"event": "job", "job_id": job_id, "status": "created", "datamart_id": name,
            "http_status": "200", "attempts": "1", **echo}


def without_time(outcome):
    assert re.fullmatch(r"\d{13}", outcome["finished_ms"]), outcome
    return {k: v for k, v in outcome.items() if k != "finished_ms"}


def assert_local_failure(outcome, job_id, code, **echo):
    assert outcome["event"] == "job"
    assert outcome["job_id"] == job_id
    assert outcome["status"] == "failed"
    assert outcome["error_code"] == code
    assert outcome["error_source"] == "local"
    assert outcome["attempts"] == "0"
    assert outcome["error_message"], outcome
    assert "http_status" not in outcome and "datamart_id" not in outcome
    for key, value in echo.items():
        assert outcome[key] == value


def assert_queue_empty(s):
    assert s.redis.xlen(JOBS) == 0
    assert dh.pending_count(s.redis) == 0


def only(outcomes):
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


@pytest.fixture
def daemons(tmp_path):
    """start(config, **kwargs) -> a dh.Daemon; each must exit 0 and never log the token."""
    started = []

    def start(config, **kwargs):
        daemon = dh.Daemon(tmp_path, config, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        code = daemon.stop()
        assert code == 0, f"datamartd exited {code}:\n{daemon.logs()[-4000:]}"
        daemon.assert_token_never_logged(TOKEN)


@pytest.fixture
def stack(tmp_path, redis_server, mock_factory, daemons):
    """start(*mock_args, redis=None, mock_token=TOKEN, ready=True, daemon_kwargs=None, **settings)
    -> a namespace with redis (str client), raw (bytes client), server, mock, config, daemon
    (already ready unless ready=False) and results."""
    def start(*mock_args, redis=None, mock_token=TOKEN, ready=True, daemon_kwargs=None,
              **settings):
        server = redis or redis_server
        mock = mock_factory(*mock_args, token=mock_token)
        config = dh.DaemonConfig(tmp_path / "datamartd.conf", server.port, mock.base_url,
                                 **settings)
        daemon = daemons(config, **(daemon_kwargs or {}))
        if ready:
            daemon.wait_ready()
        raw = server.client(decode_responses=False)
        return SimpleNamespace(redis=server.client(), raw=raw, server=server, mock=mock,
                               config=config, daemon=daemon, results=dh.Results(raw, config.prefix))
    return start


# ==== the happy path at volume ====

def test_thousand_jobs_are_created_with_byte_identical_bodies(stack):
    s = stack()
    jobs, expected, bad = [], {}, []
    for i in range(1000):
        job_id, name = f"bulk-{i:04d}", f"bulk-dm-{i:04d}"
        job = {"job_id": job_id, "tenant": f"tenant-{i % 7}", "batch": f"bulk-batch-{i % 3}",
               "payload": unusual_payload(i, name)}
        jobs.append(job)
        expected[job_id] = (name, job)
        if i % 50 == 25:  # local validation failures mixed in: they must never reach the API
            bad_id = f"bulk-bad-{i:04d}"
            jobs.append({"job_id": bad_id, "tenant": "t-bad", "payload": invalid_payload(bad_id)})
            bad.append(bad_id)
    writer = 'datamartd_redis_commands_total{connection="writer"}'
    sent_before = s.daemon.metrics()[writer]
    wall_start_ms = int(time.time() * 1000)
    started = time.monotonic()
    dh.enqueue(s.raw, jobs)
    s.results.wait(len(jobs), timeout=90, daemon=s.daemon)
    elapsed = time.monotonic() - started
    sent = s.daemon.metrics()[writer] - sent_before
    print(f"1000 jobs + {len(bad)} invalid: {elapsed:.2f} s, {len(jobs) / elapsed:.0f} jobs/s, "
          f"{sent / len(jobs):.2f} Redis commands per job")
    # a busy daemon settles the jobs finished in one loop pass, reads and claims the next in one
    # script call: a call per job would be 1, a separate claim per job 2 (housekeeping adds about
    # 15 commands a second)
    assert sent <= 0.5 * len(jobs) + 15 * elapsed

    by_id = s.results.by_job_id()
    assert sorted(by_id) == sorted([*expected, *bad])
    now_ms = int(time.time() * 1000)
    for job_id, (name, job) in expected.items():
        outcome = only(by_id[job_id])
        assert without_time(outcome) == created(job_id, name, tenant=job["tenant"],
                                                batch=job["batch"])
        assert wall_start_ms - 1000 <= int(outcome["finished_ms"]) <= now_ms + 1000
    for job_id in bad:
        outcome = only(by_id[job_id])
        assert_local_failure(outcome, job_id, "INVALID_REQUEST_BODY", tenant="t-bad")
        assert outcome["error_path"] == "tableList[0].columns"

    stats = s.mock.stats()
    assert stats["requests"] == 1000  # the invalid ones never left the daemon
    assert stats["created"] == 1000
    assert stats["auth_failures"] == 0 and stats["duplicates"] == 0
    assert stats["peak_concurrent_requests"] <= 64  # max_inflight
    received = {d["name"]: d["body"] for d in s.mock.datamarts()["datamarts"]}
    assert len(received) == 1000
    for job_id, (name, job) in expected.items():
        assert received[name].encode() == job["payload"].encode(), job_id

    assert_queue_empty(s)
    pipe = s.redis.pipeline(transaction=False)
    for job_id in expected:
        pipe.hget(f"{dh.PREFIX}:job:{job_id}", "state")
        pipe.ttl(f"{dh.PREFIX}:job:{job_id}")
    answers = pipe.execute()
    assert set(answers[0::2]) == {"created"}
    assert all(0 < ttl <= 3600 for ttl in answers[1::2])
    counted = [s.redis.hgetall(f"{dh.PREFIX}:batch:bulk-batch-{b}") for b in range(3)]
    assert [int(c["created"]) for c in counted] == [334, 333, 333]


# ==== local failures ====

# with max_inflight 1 every entry after the first is read and claimed by the publish script,
# which must read each job_id as job_create does
@pytest.mark.parametrize("inflight", [64, 1])
def test_each_envelope_error_fails_invalid_job_without_a_request(stack, inflight):
    s = stack(api={"max_payload_bytes": 2048, "max_inflight": inflight})
    ok_body = compact(body("env-fits"))
    exact_body = compact(body("env-exact"))
    exactly_max = exact_body[:-1] + ',"x-pad":"' + "p" * (2048 - len(exact_body) - 11) + '"}'
    assert len(exactly_max) == 2048
    too_big = exactly_max[:-2] + 'p"}'
    valid = compact(body("env-other"))
    long_id = "L" * 128
    cases = {  # label: (fields, job_id to expect or None for the entry id, message pattern)
        "no-payload": ([("job_id", "env-no-payload"), ("tenant", "acme")], "env-no-payload",
                       "payload"),
        "not-json": ([("job_id", "env-not-json"), ("payload", '{"name": "x", ')], "env-not-json",
                     None),
        "empty": ([("job_id", "env-empty"), ("payload", "")], "env-empty", None),
        "too-big": ([("job_id", "env-too-big"), ("payload", too_big)], "env-too-big",
                    "max_payload_bytes"),
        "bad-job-id": ([("job_id", "has space"), ("tenant", "acme"), ("payload", valid)], None,
                       "job_id"),
        "long-job-id": ([("job_id", long_id + "L"), ("payload", valid)], None, "job_id"),
        "bad-batch": ([("job_id", "env-bad-batch"), ("batch", "batch/1"), ("payload", valid)],
                      "env-bad-batch", "batch"),
        "bad-reply-to": ([("job_id", "env-bad-reply"), ("reply_to", "../x"), ("payload", valid)],
                         "env-bad-reply", "reply_to"),
        "long-reply-to": ([("job_id", "env-long-reply"), ("reply_to", "r" * 129),
                           ("payload", valid)], "env-long-reply", "reply_to"),
        "job-id-twice": ([("job_id", "env-twice"), ("job_id", "env-twice-2"), ("payload", valid)],
                         "env-twice", "job_id"),
        "payload-twice": ([("job_id", "env-payload-twice"), ("payload", valid),
                           ("payload", valid)], "env-payload-twice", "payload"),
        "tenant-twice": ([("job_id", "env-tenant-twice"), ("tenant", "a"), ("tenant", "b"),
                          ("payload", valid)], "env-tenant-twice", "tenant"),
    }
    fine = [[("job_id", "env-exactly-max"), ("payload", exactly_max)],
            [("job_id", long_id), ("payload", ok_body)]]
    labels = list(cases)
    entry_ids = dh.enqueue(s.raw, [cases[label][0] for label in labels] + fine)
    s.results.wait(len(labels) + 2, daemon=s.daemon)
    by_id = s.results.by_job_id()

    for label, entry_id in zip(labels, entry_ids):
        fields, job_id, pattern = cases[label]
        if label == "job-id-twice":  # which copy names the failure is not the point
            job_id = "env-twice" if "env-twice" in by_id else entry_id
        outcome = only(by_id[job_id or entry_id])
        assert_local_failure(outcome, job_id or entry_id, "INVALID_JOB")
        if pattern:
            assert pattern in outcome["error_message"], (label, outcome)
        if dict(fields).get("tenant") == "acme":
            assert outcome["tenant"] == "acme"
        assert "batch" not in outcome, label
    assert without_time(only(by_id["env-exactly-max"])) == created("env-exactly-max", "env-exact")
    assert without_time(only(by_id[long_id])) == created(long_id, "env-fits")
    # a name outside the pattern never becomes a key
    assert s.redis.keys(f"{dh.PREFIX}:reply:*") == []
    assert s.redis.keys(f"{dh.PREFIX}:batch:*") == []
    assert s.mock.stats()["requests"] == 2
    assert_queue_empty(s)
    assert "claimed by the publish script" not in s.daemon.logs()


def test_local_validation_failure_reports_path_and_errors(stack):
    s = stack()
    payload = compact(body("", tables=[{"name": "t", "columns": [
        {"name": "c", "isCustomColumn": True}]}]))
    dh.enqueue(s.raw, [{"job_id": "val-1", "tenant": "acme", "payload": payload}])
    outcome = only(s.results.wait(1, daemon=s.daemon))
    assert_local_failure(outcome, "val-1", "INVALID_REQUEST_BODY", tenant="acme")
    errors = json.loads(outcome["errors"])
    assert [e["path"] for e in errors] == ["name", "tableList[0].columns[0].sql"]
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    assert outcome["error_path"] == "name"
    assert outcome["error_message"] == errors[0]["message"]
    stored = s.redis.hgetall(f"{dh.PREFIX}:job:val-1")
    assert stored["state"] == "failed" and stored["errors"] == outcome["errors"]
    assert s.mock.stats()["requests"] == 0
    assert_queue_empty(s)


# ==== permanent API errors ====

def test_each_permanent_api_error_fails_after_one_attempt(stack):
    s = stack("--datasource", "postgres-main", "--datasource", "warehouse",
              api={"max_payload_bytes": 2 * 1024 * 1024})
    s.mock.precreate(["taken-name"])
    oversized = compact(body("api-huge", **{"x-pad": "z" * (1024 * 1024 + 10)}))
    dh.enqueue(s.raw, [
        {"job_id": "api-ds", "payload": compact(body("api-ds", datasource="nope"))},
        {"job_id": "api-taken", "payload": compact(body("taken-name"))},
        {"job_id": "api-huge", "payload": oversized},
        {"job_id": "api-ok", "payload": compact(body("api-ok", datasource="warehouse"))},
    ])
    s.results.wait(4, daemon=s.daemon)
    by_id = s.results.by_job_id()

    def api_failure(job_id, code, status, message):
        return {"event": "job", "job_id": job_id, "status": "failed", "error_code": code,
                "error_message": message, "error_source": "api", "http_status": status,
                "attempts": "1"}

    assert without_time(only(by_id["api-ds"])) == api_failure(
        "api-ds", "DATASOURCE_NAME_ERROR", "400", "Datasource does not exist or is not accessible")
    assert without_time(only(by_id["api-taken"])) == api_failure(
        "api-taken", "DATAMART_EXISTS", "400", "Datamart name already exists")
    # a 4xx the contract does not list is permanent too; the API's own code is kept
    assert without_time(only(by_id["api-huge"])) == api_failure(
        "api-huge", "PAYLOAD_TOO_LARGE", "413", "Request body is larger than 1048576 bytes")
    assert without_time(only(by_id["api-ok"])) == created("api-ok", "api-ok")
    assert s.mock.stats()["requests"] == 4
    marts = s.mock.datamarts()
    assert [d["name"] for d in marts["datamarts"]] == ["api-ok"]
    assert marts["precreated"] == ["taken-name"]
    assert_queue_empty(s)


# ==== duplicates ====

def test_repeated_job_id_after_it_finished_republishes_its_outcome(stack):
    s = stack()
    dh.enqueue(s.raw, [{"job_id": "dup-a", "tenant": "acme", "payload": compact(body("dup-dm"))}])
    first = only(s.results.wait(1, daemon=s.daemon))
    assert without_time(first) == created("dup-a", "dup-dm", tenant="acme")
    # the same job_id with another body: still no second create
    dh.enqueue(s.raw, [{"job_id": "dup-a", "tenant": "acme",
                        "payload": compact(body("dup-dm-other"))}])
    again = s.results.wait(2, daemon=s.daemon)[1]
    assert again == {**first, "duplicate": "1"}
    stats = s.mock.stats()
    assert stats["requests"] == 1 and stats["created"] == 1
    stored = s.redis.hgetall(f"{dh.PREFIX}:job:dup-a")
    assert stored["state"] == "created" and "duplicate" not in stored
    metrics = s.daemon.metrics()
    assert metrics['datamartd_jobs_total{status="created"}'] == 1
    assert metrics["datamartd_duplicate_jobs_total"] == 1
    assert_queue_empty(s)


def test_job_id_enqueued_several_times_at_once_is_created_once(stack):
    s = stack()
    payload = compact(body("twin-dm"))
    dh.enqueue(s.raw, [{"job_id": "twin", "payload": payload} for _ in range(5)])
    s.results.wait(1, daemon=s.daemon)
    harness.wait_until(lambda: s.redis.xlen(JOBS) == 0 and dh.pending_count(s.redis) == 0,
                       timeout=10, message="every copy settled")
    time.sleep(0.3)  # a late re-publication would land now
    outcomes = s.results.jobs()
    finals = [o for o in outcomes if "duplicate" not in o]
    assert without_time(only(finals)) == created("twin", "twin-dm")
    for o in outcomes:
        if o is not finals[0]:  # the others were dropped or re-published, never sent
            assert o == {**finals[0], "duplicate": "1"}
    stats = s.mock.stats()
    assert stats["requests"] == 1 and stats["duplicates"] == 0


# ==== reply_to and batches ====

def test_reply_to_pushes_the_outcome_as_json_with_a_ttl(stack):
    s = stack(queue={"reply_ttl_s": 120})
    inbox = "client-1.inbox:a_b-2"
    dh.enqueue(s.raw, [
        {"job_id": "reply-ok", "tenant": "acme", "reply_to": inbox,
         "payload": compact(body("reply-dm"))},
        {"job_id": "reply-bad", "reply_to": inbox, "payload": invalid_payload("reply-bad")},
    ])
    s.results.wait(2, daemon=s.daemon)
    key = f"{dh.PREFIX}:reply:{inbox}"
    assert s.redis.keys(f"{dh.PREFIX}:reply:*") == [key]
    assert 0 < s.redis.ttl(key) <= 120
    pushed = {m["job_id"]: m for m in map(json.loads, s.redis.lrange(key, 0, -1))}
    assert sorted(pushed) == ["reply-bad", "reply-ok"]
    numbers = ("attempts", "http_status", "finished_ms")
    for job_id, outcome in ((o["job_id"], o) for o in s.results.jobs()):
        expected = {k: int(v) if k in numbers else v for k, v in outcome.items()}
        if "errors" in expected:
            expected["errors"] = json.loads(expected["errors"])
        assert pushed[job_id] == expected
    assert pushed["reply-ok"]["status"] == "created"
    assert pushed["reply-bad"]["errors"][0]["path"] == "tableList[0].columns"


def test_batch_counts_outcomes_and_announces_its_end_once(stack):
    s = stack(queue={"max_attempts": 1})
    batch = "b-2024.q1:x"
    s.redis.hset(f"{dh.PREFIX}:batch:{batch}", "total", 6)
    s.mock.set_faults(fail_first=1)
    dh.enqueue(s.raw, [{"job_id": "batch-dead", "batch": batch,
                        "payload": compact(body("batch-dead"))}])
    dead = only(s.results.wait(1, daemon=s.daemon))
    assert without_time(dead) == {
        "event": "job", "job_id": "batch-dead", "status": "dead",
        "error_code": "INTERNAL_SERVER_ERROR", "error_message": "Internal server error",
        "error_source": "api", "http_status": "500", "attempts": "1", "batch": batch}
    assert s.results.batches() == []

    dh.enqueue(s.raw, [{"job_id": f"batch-ok-{i}", "batch": batch,
                        "payload": compact(body(f"batch-ok-{i}"))} for i in range(3)] + [
        {"job_id": "batch-invalid", "batch": batch, "payload": invalid_payload("x")},
        {"job_id": "batch-ds", "batch": batch, "payload": compact(body("b", datasource="no"))},
    ])
    s.results.wait(1, event="batch", daemon=s.daemon)
    # the same job_id again (finished): re-published, not counted
    dh.enqueue(s.raw, [{"job_id": "batch-ok-0", "batch": batch,
                        "payload": compact(body("batch-ok-0"))}])
    entries = s.results.wait(7, daemon=s.daemon)
    time.sleep(0.3)
    entries = s.results.poll()
    batch_events = [e for e in entries if e["event"] == "batch"]
    event = only(batch_events)
    assert without_time(event) == {"event": "batch", "batch": batch, "total": "6",
                                   "created": "3", "failed": "2", "dead": "1"}
    position = entries.index(event)
    assert len([e for e in entries[:position] if e["event"] == "job"]) == 6
    assert entries[-1]["duplicate"] == "1" and entries[-1]["job_id"] == "batch-ok-0"
    counters = s.redis.hgetall(f"{dh.PREFIX}:batch:{batch}")
    assert {k: v for k, v in counters.items() if k != "finished_ms"} == {
        "total": "6", "created": "3", "failed": "2", "dead": "1"}
    assert_queue_empty(s)


def test_a_job_whose_outcome_cannot_be_written_holds_up_no_other(stack):
    """Outcomes go out several to one script call. One job's batch key is a string: its outcome
    is refused (and tried again every second, said once in the log, counted every time) while
    the jobs published with it are settled; once the key is mended it is published, once."""
    s = stack(queue={"max_attempts": 1})
    s.redis.set(f"{dh.PREFIX}:batch:broken", "not a hash")
    dh.enqueue(s.raw, [{"job_id": f"held-{i}", "payload": compact(body(f"held-{i}")),
                        **({"batch": "broken"} if i == 3 else {})} for i in range(8)])
    outcomes = s.results.wait(7, daemon=s.daemon)
    assert sorted(o["job_id"] for o in outcomes) == [f"held-{i}" for i in range(8) if i != 3]
    harness.wait_until(lambda: s.daemon.metrics()["datamartd_refused_outcomes_total"] >= 3,
                       timeout=5, message="the refused publish, tried again")
    refusals = re.findall(r"job_id=held-3 .*publishing the outcome failed: (.*)", s.daemon.logs())
    assert refusals == [f"WRONGTYPE {dh.PREFIX}:batch:broken is not a hash: outcome not published "
                        "(tried again every second)"]
    assert dh.pending_count(s.redis) == 1

    s.redis.delete(f"{dh.PREFIX}:batch:broken")
    outcomes = s.results.wait(8, daemon=s.daemon)
    time.sleep(1.5)  # another tick: a second publish would show
    outcomes = s.results.jobs()
    assert sorted(o["job_id"] for o in outcomes) == [f"held-{i}" for i in range(8)]
    assert s.redis.hgetall(f"{dh.PREFIX}:batch:broken") == {"created": "1"}
    assert_queue_empty(s)


# ==== systemd ====

def test_sd_notify_ready_status_watchdog_reloading_stopping(stack):
    notify = dh.NotifyListener()
    try:
        s = stack(daemon_kwargs={"notify_socket": notify.path,
                                 "extra_env": {"WATCHDOG_USEC": "400000"}})
        ready = notify.wait_for(lambda m: m.get("READY") == "1", message="READY=1")
        assert "STATUS" in notify.messages[ready]
        dh.enqueue(s.raw, [{"job_id": "notify-1", "payload": compact(body("notify-1"))}])
        s.results.wait(1, daemon=s.daemon)
        notify.wait_for(lambda m: "1 created" in m.get("STATUS", ""), start=ready,
                        message="a STATUS= summary counting the created job")
        first_dog = notify.wait_for(lambda m: m.get("WATCHDOG") == "1", message="WATCHDOG=1")
        notify.wait_for(lambda m: m.get("WATCHDOG") == "1", start=first_dog + 1,
                        message="a second WATCHDOG=1")

        mark = len(notify.poll())
        before_us = time.monotonic() * 1e6
        s.daemon.send_signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: m.get("RELOADING") == "1", start=mark,
                                    message="RELOADING=1")
        monotonic_us = int(notify.messages[reloading]["MONOTONIC_USEC"])
        assert before_us - 1e6 <= monotonic_us <= time.monotonic() * 1e6 + 1e6
        again = notify.wait_for(lambda m: m.get("READY") == "1", start=reloading,
                                message="READY=1 after the reload")
        assert "reload failed" not in notify.messages[again]["STATUS"]

        mark = len(notify.poll())
        s.daemon.send_signal(signal.SIGTERM)
        notify.wait_for(lambda m: m.get("STOPPING") == "1", start=mark, message="STOPPING=1")
        assert s.daemon.wait(timeout=10) == 0
    finally:
        notify.close()


# ==== log lines: journald priorities or a timestamped head ====

PLAIN_HEAD_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z datamartd\[(\d+)\] "
                           r"(error|warn|info|debug): ")


def log_a_failed_reload_and_one_job_then_stop(s):
    """An error line (a broken reload), then one created job whose info line must reach stderr
    while the daemon still runs, then SIGTERM; the daemon's stderr lines."""
    stderr = s.daemon.program.stderr_text
    s.config.update(api={"max_inflight": "lots"})
    s.daemon.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: "max_inflight" in stderr(), timeout=5,
                       message="the failed reload's error line")
    dh.enqueue(s.raw, [{"job_id": "log-1", "payload": compact(body("log-1"))}])
    assert without_time(only(s.results.wait(1, daemon=s.daemon))) == created("log-1", "log-1")
    # info lines wait only for the end of their loop pass, not for the exit
    harness.wait_until(lambda: "job_id=log-1" in stderr(), timeout=5,
                       message="the job's info line while the daemon runs")
    assert s.daemon.running()
    s.daemon.send_signal(signal.SIGTERM)
    assert s.daemon.wait(timeout=10) == 0
    return stderr().splitlines()


def test_journal_stream_lines_carry_syslog_priorities_and_no_timestamp(stack):
    s = stack(daemon_kwargs={"journal": True})
    lines = log_a_failed_reload_and_one_job_then_stop(s)
    for line in lines:
        assert re.match(r"<[3467]>\S", line), line
        assert not PLAIN_HEAD_RE.search(line), line
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line), line
    assert re.fullmatch(r"<6>datamartd \S+ starting: consumer .*", lines[0]), lines[0]
    assert any(re.fullmatch(r"<3>reload: .*max_inflight.*", line) for line in lines), lines
    assert any(re.fullmatch(r"<6>job_id=log-1 tenant=\S+ entry=\d+-\d+: created datamart log-1 "
                            r"\(HTTP 20[01], \d+ ms\)", line)
               for line in lines), lines
    assert any(line.startswith("<6>SIGTERM: stopping") for line in lines), lines
    assert lines[-1] == "<6>stopped"


def test_plain_stderr_lines_carry_a_utc_timestamp_pid_and_level(stack):
    s = stack()
    lines = log_a_failed_reload_and_one_job_then_stop(s)
    heads = [PLAIN_HEAD_RE.match(line) for line in lines]
    assert all(heads), [line for line, head in zip(lines, heads) if not head]
    now = time.time()
    for head in heads:
        when = calendar.timegm(time.strptime(head.group(1), "%Y-%m-%dT%H:%M:%S"))
        assert now - 120 <= when <= now + 5, head.group(0)
        assert int(head.group(2)) == s.daemon.program.pid
    assert not any(line.startswith("<") for line in lines)
    levels = [(head.group(3), line[head.end():]) for line, head in zip(lines, heads)]
    assert levels[0][0] == "info" and levels[0][1].startswith("datamartd ")
    assert any(lvl == "error" and msg.startswith("reload: ") for lvl, msg in levels), lines
    assert any(lvl == "info" and re.fullmatch(r"job_id=log-1 .*: created datamart log-1 .*", msg)
               for lvl, msg in levels), lines
    assert levels[-1] == ("info", "stopped")


# ==== signals ====

def wait_in_flight(mock, count):
    harness.wait_until(lambda: mock.stats()["concurrent_requests"] == count, timeout=10,
                       message=f"{count} requests held by the mock")


def test_sigterm_lets_requests_in_flight_finish_and_publishes_them(stack):
    s = stack("--latency-ms", "1500", queue={"shutdown_grace_ms": 8000})
    dh.enqueue(s.raw, [{"job_id": f"term-{i}", "payload": compact(body(f"term-{i}"))}
                       for i in range(5)])
    wait_in_flight(s.mock, 5)
    s.daemon.send_signal(signal.SIGTERM)
    harness.wait_until(lambda: s.daemon.get("/readyz") == (503, "shutting down\n"), timeout=5,
                       message="/readyz to report the shutdown")
    late = dh.enqueue(s.raw, [{"job_id": "term-late", "payload": compact(body("term-late"))}])
    assert s.daemon.wait(timeout=10) == 0
    by_id = s.results.by_job_id()
    assert sorted(by_id) == [f"term-{i}" for i in range(5)]
    for i in range(5):
        assert without_time(only(by_id[f"term-{i}"])) == created(f"term-{i}", f"term-{i}")
    # the job enqueued after SIGTERM was not started: it waits for the next daemon
    assert [e[0] for e in s.redis.xrange(JOBS)] == late
    assert s.mock.stats()["requests"] == 5


def test_jobs_claimed_ahead_wait_for_a_request_slot_and_sigterm_withdraws_their_claims(
        stack, daemons):
    """max_inflight 16 holds 16 requests and claims 2 jobs ahead (max_inflight / 8), which go
    the moment requests finish. SIGTERM lets the 16 finish and withdraws the 2 claims: after a
    restart they are created at their first attempt, not counted as possibly sent before."""
    s = stack("--latency-ms", "1500", api={"max_inflight": 16},
              queue={"shutdown_grace_ms": 8000})
    dh.enqueue(s.raw, [{"job_id": f"ahead-{i:02d}", "payload": compact(body(f"ahead-{i:02d}"))}
                       for i in range(30)])
    wait_in_flight(s.mock, 16)
    harness.wait_until(lambda: dh.pending_count(s.redis) == 18, timeout=5,
                       message="16 jobs sent and 2 claimed ahead")
    claimed = [k for k in s.redis.keys(f"{dh.PREFIX}:job:ahead-*")
               if s.redis.hget(k, "state") == "active"]
    assert len(claimed) == 18 and all(s.redis.hget(k, "inflight") for k in claimed)
    time.sleep(0.3)
    assert s.mock.stats()["concurrent_requests"] == 16  # never more requests than max_inflight

    s.daemon.send_signal(signal.SIGTERM)
    assert s.daemon.wait(timeout=10) == 0
    assert len(s.results.jobs()) == 16
    assert s.mock.stats()["requests"] == 16
    assert dh.pending_count(s.redis) == 2
    assert len(re.findall(r"not sent before shutdown: claim withdrawn", s.daemon.logs())) == 2
    assert not [k for k in claimed if s.redis.hget(k, "inflight")]

    s.mock.set_faults(latency_ms=0)
    daemons(s.config).wait_ready()
    s.results.wait(30, timeout=15)
    for outcome in s.results.jobs():
        assert outcome["status"] == "created" and outcome["attempts"] == "1", outcome
        assert "recovered" not in outcome
    assert s.mock.stats()["requests"] == 30
    assert_queue_empty(s)

def test_sigterm_during_an_auth_pause_withdraws_the_claims_of_held_back_jobs(stack, daemons):
    """The API refuses the token: the jobs it answered 401 wait, still claimed, for a new token.
    SIGTERM withdraws those claims, so once the token is right they are created at attempt 1
    (a 401 spends no attempt), not counted as possibly sent before."""
    s = stack(mock_token="a-token-the-daemon-does-not-have", api={"max_inflight": 4},
              breaker={"enabled": "yes", "probe_interval_ms": 60000, "probe_max_ms": 60000})
    dh.enqueue(s.raw, [{"job_id": f"auth-{i}", "payload": compact(body(f"auth-{i}"))}
                       for i in range(4)])
    harness.wait_until(lambda: len(re.findall(r": held back: ", s.daemon.logs())) >= 1,
                       timeout=10, message="a job held back by the auth pause")
    time.sleep(0.3)  # the other answers of the first round come back
    held = set(re.findall(r"job_id=(auth-\d) .*: held back: ", s.daemon.logs()))

    s.daemon.send_signal(signal.SIGTERM)
    assert s.daemon.wait(timeout=10) == 0
    withdrawn = set(re.findall(r"job_id=(auth-\d) .*claim withdrawn", s.daemon.logs()))
    assert held and withdrawn >= held
    assert not [k for k in s.redis.keys(f"{dh.PREFIX}:job:auth-*") if s.redis.hget(k, "inflight")]
    assert s.results.jobs() == [] and dh.pending_count(s.redis) == 4

    s.mock.set_tokens([TOKEN])
    daemons(s.config).wait_ready()
    s.results.wait(4, timeout=15)
    for outcome in s.results.jobs():
        assert outcome["status"] == "created" and outcome["attempts"] == "1", outcome
    assert_queue_empty(s)

def test_sigterm_with_short_grace_leaves_jobs_pending_for_the_next_start(stack, daemons):
    s = stack("--latency-ms", "1500", queue={"shutdown_grace_ms": 200})
    dh.enqueue(s.raw, [{"job_id": f"grace-{i}", "payload": compact(body(f"grace-{i}"))}
                       for i in range(3)])
    wait_in_flight(s.mock, 3)
    started = time.monotonic()
    s.daemon.send_signal(signal.SIGTERM)
    assert s.daemon.wait(timeout=10) == 0
    assert time.monotonic() - started < 1.4  # it did not wait for the answers
    assert s.results.jobs() == []
    assert s.redis.xlen(JOBS) == 3 and dh.pending_count(s.redis) == 3

    s.mock.set_faults(latency_ms=0)
    daemons(s.config).wait_ready()
    s.results.wait(3, timeout=15)
    by_id = s.results.by_job_id()
    for i in range(3):
        outcome = only(by_id[f"grace-{i}"])
        # the mock created it on the first request, whose answer the daemon never read
        assert outcome["status"] == "created" and outcome["datamart_id"] == f"grace-{i}"
        assert outcome["recovered"] == "1"
        # the aborted request reached the mock: it counts, and so does the one after the restart
        assert int(outcome["attempts"]) == 2
    stats = s.mock.stats()
    assert stats["created"] == 3  # no name created twice
    assert_queue_empty(s)


def test_sighup_applies_a_new_token_and_log_level(stack, tmp_path):
    token_a, token_b = "dmtest-token-A-1f9e27c4", "dmtest-token-B-77ad03be"
    token_file = tmp_path / "api-token"
    token_file.write_text(token_a + "\n")
    s = stack(mock_token=token_a, daemon_kwargs={"token": None},
              api={"token_file": token_file})
    dh.enqueue(s.raw, [{"job_id": "hup-1", "payload": compact(body("hup-1"))}])
    assert without_time(only(s.results.wait(1, daemon=s.daemon))) == created("hup-1", "hup-1")
    assert " debug: " not in s.daemon.logs()

    token_file.write_text(token_b + "\n")
    s.mock.set_tokens([token_b])
    s.config.update(log={"level": "debug"})
    s.daemon.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: "reload: done" in s.daemon.logs(), timeout=5,
                       message="the reload to finish")
    dh.enqueue(s.raw, [{"job_id": "hup-2", "payload": compact(body("hup-2"))}])
    assert without_time(s.results.wait(2, daemon=s.daemon)[1]) == created("hup-2", "hup-2")
    assert s.mock.stats()["auth_failures"] == 0
    assert re.search(r" debug: .*job_id=hup-2", s.daemon.logs())
    s.daemon.assert_token_never_logged(token_a, token_b)


def test_sighup_leaves_requests_in_flight_untouched(stack):
    s = stack("--latency-ms", "1000")
    dh.enqueue(s.raw, [{"job_id": f"hupfly-{i}", "payload": compact(body(f"hupfly-{i}"))}
                       for i in range(4)])
    wait_in_flight(s.mock, 4)
    s.config.update(api={"request_timeout_ms": 20000, "max_inflight": 32},
                    log={"level": "warn"})
    s.daemon.send_signal(signal.SIGHUP)
    s.results.wait(4, daemon=s.daemon)
    for job_id, outcomes in s.results.by_job_id().items():
        assert without_time(only(outcomes)) == created(job_id, job_id)
    assert s.mock.stats()["requests"] == 4
    assert "reload failed" not in s.daemon.logs()


def test_sighup_with_a_broken_config_keeps_the_old_one(stack):
    notify = dh.NotifyListener()
    try:
        s = stack(daemon_kwargs={"notify_socket": notify.path})
        notify.wait_for(lambda m: m.get("READY") == "1", message="READY=1")
        s.config.update(api={"max_inflight": "lots"})
        mark = len(notify.poll())
        s.daemon.send_signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: m.get("RELOADING") == "1", start=mark,
                                    message="RELOADING=1")
        ready = notify.wait_for(lambda m: m.get("READY") == "1", start=reloading,
                                message="READY=1 after the failed reload")
        assert "reload failed" in notify.messages[ready]["STATUS"]
        assert re.search(r" error: reload: .*max_inflight", s.daemon.logs())
        # still working, on the old config, and it keeps saying so
        dh.enqueue(s.raw, [{"job_id": "broken-1", "payload": compact(body("broken-1"))}])
        outcome = only(s.results.wait(1, daemon=s.daemon))
        assert without_time(outcome) == created("broken-1", "broken-1")
        notify.wait_for(lambda m: "reload failed" in m.get("STATUS", "") and "READY" not in m,
                        start=ready + 1, message="a periodic STATUS= still naming the failure")

        s.config.update(api={"max_inflight": 64})
        mark = len(notify.poll())
        s.daemon.send_signal(signal.SIGHUP)
        ready = notify.wait_for(lambda m: m.get("READY") == "1", start=mark,
                                message="READY=1 after the good reload")
        assert "reload failed" not in notify.messages[ready]["STATUS"]
        assert s.daemon.running()
    finally:
        notify.close()


# ==== Redis failures ====

def test_redis_killed_and_restarted_mid_run_loses_and_repeats_nothing(stack, tmp_path):
    server = dh.start_aof_redis(harness.RedisServer(tmp_path / "aof", appendonly=True))
    try:
        s = stack("--latency-ms", "100", redis=server, api={"max_inflight": 8})
        count = 300
        dh.enqueue(s.raw, [{"job_id": f"crash-{i:03d}", "payload": compact(body(f"crash-{i:03d}"))}
                           for i in range(count)])
        s.results.wait(40, daemon=s.daemon)
        # Redis dies with requests in flight (all 8 answers of a round arrive together: wait for
        # the next round to be on the wire)
        harness.wait_until(lambda: s.mock.stats()["concurrent_requests"] > 0, timeout=5,
                           message="requests in flight")
        dh.redis_kill(server)
        time.sleep(1.0)  # requests in flight finish while Redis is down
        dh.start_aof_redis(server)
        s.results.client = server.client(decode_responses=False)
        s.results.wait(count, timeout=60, daemon=s.daemon)
        time.sleep(0.3)
        by_id = s.results.by_job_id()
        assert sorted(by_id) == [f"crash-{i:03d}" for i in range(count)]
        for job_id, outcomes in by_id.items():
            assert without_time(only(outcomes)) == created(job_id, job_id)
        stats = s.mock.stats()
        assert stats["requests"] == count and stats["created"] == count
        assert stats["peak_concurrent_requests"] <= 8  # max_inflight
        assert stats["duplicates"] == 0
        s.redis = server.client()
        assert_queue_empty(s)
    finally:
        server.stop()


# ==== admin endpoints ====

def test_readyz_waits_for_redis_and_metrics_count_what_happened(stack, tmp_path):
    notify = dh.NotifyListener()
    late = harness.RedisServer(tmp_path / "late")  # its port stays free until it starts
    try:
        s = stack(redis=late, ready=False, daemon_kwargs={"notify_socket": notify.path})
        harness.wait_until(lambda: s.daemon.try_get("/healthz") == (200, "ok\n"), timeout=10,
                           message="/healthz")
        ready = notify.wait_for(lambda m: m.get("READY") == "1", message="READY=1 without Redis")
        assert notify.messages[ready]["STATUS"].startswith(f"waiting for Redis at {late.address}")
        time.sleep(0.5)
        status, text = s.daemon.get("/readyz")
        assert (status, text) == (503, "redis not connected\n")
        assert s.daemon.metrics()["datamartd_redis_connected"] == 0

        late.start()
        s.daemon.wait_ready(timeout=10)
        assert s.daemon.get("/readyz") == (200, "ready\n")
        assert s.daemon.get("/healthz") == (200, "ok\n")
        assert s.daemon.get("/nope")[0] == 404

        dh.enqueue(s.raw, [
            {"job_id": f"m-ok-{i}", "payload": compact(body(f"m-ok-{i}"))} for i in range(3)] + [
            {"job_id": "m-invalid", "payload": invalid_payload("m")},
            {"job_id": "m-ds", "payload": compact(body("m-ds", datasource="none"))},
        ])
        s.results.wait(5, daemon=s.daemon)
        sent_before = s.daemon.metrics()['datamartd_redis_commands_total{connection="writer"}']
        dh.enqueue(s.raw, [{"job_id": "m-ok-0", "payload": compact(body("m-ok-0"))}])
        s.results.wait(6, daemon=s.daemon)

        def metrics_with_lag():  # the lag is polled every few seconds
            m = s.daemon.metrics()
            return m if "datamartd_queue_lag" in m else None
        m = harness.wait_until(metrics_with_lag, timeout=10, message="datamartd_queue_lag")
        assert m["datamartd_queue_lag"] == 0
        assert m['datamartd_jobs_total{status="created"}'] == 3
        assert m['datamartd_jobs_total{status="failed"}'] == 2
        assert m['datamartd_jobs_total{status="dead"}'] == 0
        assert m["datamartd_duplicate_jobs_total"] == 1
        codes = {k: v for k, v in m.items() if k.startswith("datamartd_http_requests_total")}
        assert codes == {'datamartd_http_requests_total{code="200"}': 3,
                         'datamartd_http_requests_total{code="400"}': 1}
        assert m["datamartd_request_duration_seconds_count"] == 4
        assert m['datamartd_request_duration_seconds_bucket{le="+Inf"}'] == 4
        buckets = [v for k, v in m.items() if k.startswith("datamartd_request_duration_seconds_b")]
        assert buckets == sorted(buckets) and len(buckets) >= 2
        assert 0 < m["datamartd_request_duration_seconds_sum"] < 30
        assert m["datamartd_inflight_requests"] == 0
        assert m["datamartd_redis_connected"] == 1
        # the reader: CLIENT SETNAME and reads; the writer: CLIENT SETNAME, four SCRIPT LOADs and
        # a publish per outcome at least, so the duplicate's outcome counts too
        assert m['datamartd_redis_commands_total{connection="reader"}'] >= 2
        assert m['datamartd_redis_commands_total{connection="writer"}'] > sent_before >= 10
        project = (harness.SOURCE_DIR / "CMakeLists.txt").read_text()
        version = re.search(r"project\(datamartd VERSION (\S+)", project).group(1)
        assert m[f'datamartd_build_info{{version="{version}"}}'] == 1
    finally:
        notify.close()
        late.stop()


# ==== hostile input ====

def test_huge_and_binary_junk_entries_neither_crash_nor_stall_it(stack):
    s = stack()
    junk_tenant = b"\x00\xc3\x28\xff\n\r\x1b[31mred\\"
    valid = compact(body("hostile-bigfield")).encode()
    entries = [
        [(b"job_id", b"hostile-50mb"), (b"payload", b"{" + b" " * (50 * 1024 * 1024) + b"}")],
        [(b"job_id", b"hostile-bigfield"), (b"x-blob", b"\x00\xff" * (1024 * 1024)),
         (b"payload", valid)],
        [(b"job_id", b"\x00\xff\xfe id"), (b"tenant", junk_tenant), (b"batch", b"\xff\x00"),
         (b"reply_to", b"\x00../../etc"), (b"payload", b"\x00\xff{\"name\":\x00}"),
         (b"\x00\xffkey", b"\x00\xc3\x28"), (b"", b"")],
        [(b"job_id", b"hostile-tenant"), (b"tenant", junk_tenant), (b"\x00", b"\xff\x00"),
         (b"reply_to", b"hostile-inbox"), (b"payload", compact(body("hostile-tenant")).encode())],
        [(b"job_id", b"J" * (1024 * 1024)), (b"payload", valid)],
        [(b"job_id", b"hostile-long-tenant"), (b"tenant", b"t" * (1024 * 1024)),
         (b"payload", valid)],
        [(b"job_id", b"hostile-fields"), (b"payload", valid)] +
        [(f"f{i}".encode(), b"v") for i in range(100)],
        [(b"job_id", b"hostile-utf8"),
         (b"payload", compact(body("NAME")).encode().replace(b"NAME", b"\xff\xfe"))],
    ]
    after = [{"job_id": f"after-{i}", "payload": compact(body(f"after-{i}"))} for i in range(5)]
    started = time.monotonic()
    entry_ids = dh.enqueue(s.raw, entries + after)
    s.results.wait(len(entries) + len(after), timeout=20, daemon=s.daemon)
    print(f"hostile entries settled in {time.monotonic() - started:.2f} s")
    by_id = s.results.by_job_id()

    for i in range(5):
        assert without_time(only(by_id[f"after-{i}"])) == created(f"after-{i}", f"after-{i}")
    assert without_time(only(by_id["hostile-bigfield"])) == created("hostile-bigfield",
                                                                    "hostile-bigfield")
    assert dh.decode(junk_tenant) == only(by_id["hostile-tenant"])["tenant"]
    assert only(by_id["hostile-tenant"])["status"] == "created"
    huge = only(by_id["hostile-50mb"])
    assert_local_failure(huge, "hostile-50mb", "INVALID_JOB")
    assert "max_payload_bytes" in huge["error_message"]
    junk = only(by_id[entry_ids[2]])
    assert_local_failure(junk, entry_ids[2], "INVALID_JOB", tenant=dh.decode(junk_tenant))
    assert "batch" not in junk
    assert_local_failure(only(by_id[entry_ids[4]]), entry_ids[4], "INVALID_JOB")
    for job_id in ("hostile-long-tenant", "hostile-fields", "hostile-utf8"):
        assert_local_failure(only(by_id[job_id]), job_id, "INVALID_JOB")
    # the reply is still JSON: bytes that are not UTF-8 become U+FFFD, control bytes \u00XX
    reply_key = f"{dh.PREFIX}:reply:hostile-inbox"
    assert s.redis.keys(f"{dh.PREFIX}:reply:*") == [reply_key]
    reply = json.loads(only(s.raw.lrange(reply_key, 0, -1)))
    assert reply["tenant"] == junk_tenant.decode("utf-8", errors="replace")
    assert reply["status"] == "created"
    assert s.mock.stats()["requests"] == 7
    assert_queue_empty(s)
    assert s.daemon.running()


# ==== rate limit ====

def test_local_rate_limit_spaces_requests(stack):
    """rate 10/s, burst 3: the first 3 requests go at once, then one every 100 ms."""
    s = stack(rate_limit={"rate": 10, "burst": 3})
    dh.enqueue(s.raw, [{"job_id": f"rl-{i}", "payload": compact(body(f"rl-{i}"))}
                       for i in range(13)])
    s.results.wait(13, timeout=15)
    arrivals = sorted(d["arrival_ms"] for d in s.mock.datamarts()["datamarts"])
    assert len(arrivals) == 13
    span = arrivals[-1] - arrivals[0]
    # 10 permits after the burst need 1 s at 10/s; a burst-less or unlimited daemon is far off
    assert 950 <= span <= 1400, arrivals
    for window_start in arrivals:
        in_window = [a for a in arrivals if window_start <= a < window_start + 1000]
        assert len(in_window) <= 10 + 3, arrivals


def test_a_permit_not_used_for_a_request_goes_to_the_next_job(stack):
    """rate 5/s, burst 1: 12 repeats of finished job_ids mixed with 4 new jobs. A repeat takes a
    permit to be claimed, learns its job is finished and gives the permit back, so the 4 requests
    need 0.6 s; spending a permit on each repeat would stretch them over 3 s."""
    s = stack(rate_limit={"rate": 5, "burst": 1})
    finished = {"event": "job", "status": "created", "http_status": "200", "attempts": "1",
                "finished_ms": "1700000000000"}
    jobs = []
    for i in range(16):
        if i % 4 == 3:
            jobs.append({"job_id": f"pr-new-{i}", "payload": compact(body(f"pr-new-{i}"))})
        else:
            job_id = f"pr-old-{i}"
            s.redis.hset(f"{dh.PREFIX}:job:{job_id}",
                         mapping={**finished, "state": "created", "job_id": job_id,
                                  "datamart_id": job_id})
            jobs.append({"job_id": job_id, "payload": compact(body(job_id))})
    dh.enqueue(s.raw, jobs)
    outcomes = s.results.wait(16, timeout=15, daemon=s.daemon)
    assert sum(1 for o in outcomes if o.get("duplicate") == "1") == 12
    arrivals = sorted(d["arrival_ms"] for d in s.mock.datamarts()["datamarts"])
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] <= 1500, arrivals
    assert_queue_empty(s)
