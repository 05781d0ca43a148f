"""Chaos and reliability of the daemon (issue #5), black-box: real redis-server, databrain-mock and
datamartd processes on loopback, driven through Redis, HTTP, signals and files only. Each test is
bounded in time; every timing constant below is derived from the config the test writes."""
import json
import re
import signal
import subprocess
import time

import pytest

import daemon_harness as dh
import harness

TOKEN = dh.TOKEN
PREFIX = dh.PREFIX
JOBS = f"{PREFIX}:jobs"
RETRY = f"{PREFIX}:retry"
DEAD = f"{PREFIX}:dead"
PAUSE_TEXT = re.compile(r"auth|token|credential", re.IGNORECASE)

CLAIM_IDLE_MS = 2000
# retries fast enough for tests: backoff 50 ms doubling up to 500 ms
QUEUE = {"max_attempts": 10, "backoff_base_ms": 50, "backoff_max_ms": 500,
         "claim_idle_ms": CLAIM_IDLE_MS}


def now_ms():
    return int(time.time() * 1000)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def payload(name):
    return compact(harness.datamart_body(name))


def make_jobs(tag, count, **extra):
    """count jobs `<tag>-NNNN`, each creating the datamart of the same name."""
    return [{"job_id": f"{tag}-{i:04d}", "payload": payload(f"{tag}-{i:04d}"), **extra}
            for i in range(count)]


def without_time(outcome):
    assert re.fullmatch(r"\d{13}", outcome["finished_ms"]), outcome
    return {k: v for k, v in outcome.items() if k != "finished_ms"}


class Stack:
    """One Redis, one mock, any number of daemons sharing them; results read from P:results."""

    def __init__(self, tmp_path, server, mock):
        self.tmp_path = tmp_path
        self.server = server
        self.mock = mock
        self.daemons = []
        self.killed = set()
        self.connect()

    def connect(self):
        """(Re)open the Redis clients, e.g. after the server restarted."""
        self.redis = self.server.client()
        self.raw = self.server.client(decode_responses=False)
        if hasattr(self, "results"):
            self.results.client = self.raw
        else:
            self.results = dh.Results(self.raw, PREFIX)

    def config(self, name="a", **settings):
        """A config of its own (file, consumer name, admin port) for instance `name`."""
        merged = {"queue": {**QUEUE, "consumer": f"chaos-{name}"}}
        for section, keys in settings.items():
            merged[section] = {**merged.get(section, {}), **keys}
        return dh.DaemonConfig(self.tmp_path / f"datamartd-{name}.conf", self.server.port,
                               self.mock.base_url, **merged)

    def start(self, config, ready=True, **kwargs):
        daemon = dh.Daemon(self.tmp_path, config, **kwargs)
        self.daemons.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    def kill(self, daemon):
        """SIGKILL, as a crash or an OOM kill would."""
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        self.killed.add(id(daemon))

    def enqueue(self, jobs):
        return dh.enqueue(self.raw, jobs)

    def finals(self):
        """{job_id: [non-duplicate outcomes]} so far."""
        out = {}
        for e in self.results.jobs():
            if e.get("duplicate") != "1":
                out.setdefault(e["job_id"], []).append(e)
        return out

    def diagnose(self):
        """A one-paragraph picture of the system, for assertion messages."""
        try:
            queue = (f"stream {self.redis.xlen(JOBS)}, pending {dh.pending_count(self.redis)}, "
                     f"retry {self.redis.zcard(RETRY)}, dead {self.redis.xlen(DEAD)}, "
                     f"paused {self.redis.exists(f'{PREFIX}:paused')}")
        except Exception as exc:  # Redis may be the thing that is down
            queue = f"redis: {exc}"
        logs = "\n".join(f"--- {d.config.settings['queue']['consumer']} "
                         f"({'running' if d.running() else 'exited'}):\n{d.logs()[-2500:]}"
                         for d in self.daemons)
        return f"{queue}\nmock {self.mock.stats()}\n{logs}"

    def wait_finished(self, count, timeout, message="jobs finished"):
        """Until count distinct jobs have a non-duplicate outcome; the finals."""
        deadline = time.monotonic() + timeout
        while True:
            finals = self.finals()
            if len(finals) >= count:
                return finals
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(finals)}/{count} {message} after {timeout}s\n"
                                     f"{self.diagnose()}")
            time.sleep(0.05)

    def assert_all_created_once(self, jobs):
        """Every job exactly one non-duplicate outcome, `created` with its own name; a duplicate
        outcome, if any, repeats it; the mock created every name exactly once. The finals."""
        expected = {j["job_id"]: json.loads(j["payload"])["name"] for j in jobs}
        by_id = self.results.by_job_id()
        assert sorted(by_id) == sorted(expected), f"{len(by_id)}/{len(expected)} jobs"
        finals = {}
        for job_id, outcomes in by_id.items():
            final = [o for o in outcomes if o.get("duplicate") != "1"]
            assert len(final) == 1, outcomes
            final = final[0]
            assert final["status"] == "created", final
            assert final["datamart_id"] == expected[job_id], final
            assert int(final["attempts"]) >= 1, final
            for o in outcomes:
                if o is not final:
                    assert o == {**final, "duplicate": "1"}, outcomes
            finals[job_id] = final
        names = [d["name"] for d in self.mock.datamarts()["datamarts"]]
        assert len(names) == len(set(names)), "the mock created a name twice"
        assert sorted(names) == sorted(expected.values())
        assert self.mock.stats()["created"] == len(expected)
        return finals

    def assert_settled(self):
        assert self.redis.xlen(JOBS) == 0
        assert dh.pending_count(self.redis) == 0
        assert self.redis.zcard(RETRY) == 0


@pytest.fixture
def chaos(tmp_path, redis_server, mock_factory):
    """start(*mock_args, redis=None, mock_token=TOKEN) -> a Stack. Daemons not killed by the test
    must exit 0 at the end; none may ever log the token."""
    stacks = []

    def start(*mock_args, redis=None, mock_token=TOKEN):
        mock = mock_factory(*mock_args, token=mock_token)
        stack = Stack(tmp_path, redis or redis_server, mock)
        stacks.append(stack)
        return stack

    yield start
    # stop every daemon before judging any, so a failure leaves no process behind
    stopped = [(stack, d, d.stop()) for stack in stacks for d in stack.daemons]
    for stack, daemon, code in stopped:
        if id(daemon) not in stack.killed:
            assert code == 0, f"datamartd exited {code}:\n{daemon.logs()[-4000:]}"
        daemon.assert_token_never_logged(TOKEN)


def request_bracket(mock, count, since_ms, timeout=10):
    """Wait until the mock has counted `count` API requests, none of which came before since_ms;
    (lo_ms, hi_ms): the request that made the count arrived between the two (wall clock)."""
    deadline = time.monotonic() + timeout
    lo = since_ms
    while True:
        polled = now_ms()
        if mock.stats()["requests"] >= count:
            return lo, now_ms()
        lo = polled  # the mock had not seen it when it answered this poll
        if time.monotonic() > deadline:
            raise AssertionError(f"the mock did not see {count} requests in {timeout}s")
        time.sleep(0.01)


def watch_mock(mock, seconds, interval=0.05):
    """Poll the mock for `seconds`: (request count at each poll with its time, peak concurrency)."""
    samples, peak = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stats = mock.stats()
        samples.append((time.monotonic(), stats["requests"]))
        peak = max(peak, stats["concurrent_requests"])
        time.sleep(interval)
    return samples, peak


def wait_state(s, job_id, state, timeout=5):
    """The job hash once its state is `state`."""
    def reached():
        job = s.redis.hgetall(f"{PREFIX}:job:{job_id}")
        return job if job.get("state") == state else None
    return harness.wait_until(reached, timeout=timeout, message=f"{job_id} in state {state}")


def increments(samples):
    """The times at which the polled request count grew."""
    return [t for (t, n), (_, before) in zip(samples[1:], samples) if n > before]


# ==== retries ====

def test_three_failures_then_created_on_the_fourth_attempt(chaos):
    s = chaos("--fail-first", "3", "--fail-first-status", "503")
    daemon = s.start(s.config())
    s.enqueue([{"job_id": "ff-1", "tenant": "acme", "payload": payload("ff-1")}])
    outcome = s.wait_finished(1, timeout=10)["ff-1"][0]
    assert without_time(outcome) == {"event": "job", "job_id": "ff-1", "status": "created",
                                     "datamart_id": "ff-1", "http_status": "200",
                                     "attempts": "4", "tenant": "acme"}
    stats = s.mock.stats()
    assert stats["requests"] == 4 and stats["created"] == 1
    assert s.redis.hget(f"{PREFIX}:job:ff-1", "state") == "created"
    assert daemon.running()
    s.assert_settled()


def test_retry_after_is_the_earliest_next_attempt_and_the_wait_lives_in_redis(chaos):
    """A 429 with Retry-After: 2 parks the job in P:retry (state retrying, next_attempt_ms, the data
    to re-enqueue it) and holds every submission, its own retry included, for 2 s."""
    s = chaos("--rate-limit", "1", "--retry-after", "2")
    s.start(s.config())
    body_a = json.dumps(harness.datamart_body("ra-a"), indent=1, ensure_ascii=False) + "\n"
    enqueued = now_ms()
    entry_a = s.enqueue([{"job_id": "ra-a", "tenant": "acme", "batch": "ra-batch",
                          "reply_to": "ra-inbox", "payload": body_a}])[0]
    lo, hi = request_bracket(s.mock, 1, since_ms=enqueued)
    s.mock.set_faults(rate_limit=0)

    key = f"{PREFIX}:job:ra-a"
    job = wait_state(s, "ra-a", "retrying")
    # the daemon has seen the 429: a job arriving now must wait for Retry-After as well
    s.enqueue([{"job_id": "ra-b", "payload": payload("ra-b")}])
    due = int(job["next_attempt_ms"])
    assert lo + 2000 <= due <= hi + 2000 + QUEUE["backoff_max_ms"] + 1000, (lo, hi, job)
    assert s.redis.zscore(RETRY, "ra-a") == due
    assert job["payload"] == body_a
    assert (job["tenant"], job["batch"], job["reply_to"]) == ("acme", "ra-batch", "ra-inbox")
    assert job["attempts"] == "1"
    assert job["last_http_status"] == "429"
    assert job["last_error_code"] and job["last_error_message"]
    # parked means acked and deleted: the stream entry is gone
    assert s.redis.xrange(JOBS, entry_a, entry_a) == []
    assert entry_a not in [p["message_id"] for p in
                           s.redis.xpending_range(JOBS, dh.GROUP, "-", "+", 100)]

    finals = s.wait_finished(2, timeout=10)
    assert without_time(finals["ra-a"][0]) == {
        "event": "job", "job_id": "ra-a", "status": "created", "datamart_id": "ra-a",
        "http_status": "200", "attempts": "2", "tenant": "acme", "batch": "ra-batch"}
    assert finals["ra-b"][0]["attempts"] == "1"
    arrivals = {d["name"]: d["arrival_ms"] for d in s.mock.datamarts()["datamarts"]}
    # the retry no earlier than Retry-After, and the other job was held back as well
    assert arrivals["ra-a"] >= lo + 2000, (lo, arrivals)
    assert arrivals["ra-b"] >= lo + 2000, (lo, arrivals)
    assert s.mock.stats()["requests"] == 3
    assert s.redis.hget(key, "state") == "created"
    s.assert_settled()


def test_a_waiting_retry_survives_a_crash_and_another_instance_takes_it(chaos):
    s = chaos("--rate-limit", "1", "--retry-after", "3")
    a = s.start(s.config("a"))
    enqueued = now_ms()
    s.enqueue([{"job_id": "park-1", "tenant": "acme", "payload": payload("park-1")}])
    lo, _ = request_bracket(s.mock, 1, since_ms=enqueued)
    s.mock.set_faults(rate_limit=0)
    due = int(wait_state(s, "park-1", "retrying")["next_attempt_ms"])
    s.kill(a)
    s.start(s.config("b"))
    outcome = s.wait_finished(1, timeout=10)["park-1"][0]
    assert without_time(outcome) == {"event": "job", "job_id": "park-1", "status": "created",
                                     "datamart_id": "park-1", "http_status": "200",
                                     "attempts": "2", "tenant": "acme"}
    (created,) = s.mock.datamarts()["datamarts"]
    assert created["arrival_ms"] >= max(lo + 3000, due - 5), (lo, due, created)
    assert s.mock.stats()["requests"] == 2
    s.assert_settled()


def test_a_429_holds_back_the_whole_cluster_until_retry_after(chaos):
    s = chaos("--rate-limit", "1", "--retry-after", "2")
    limit = {"rate": 100, "burst": 10, "scope": "cluster"}
    for name in ("a", "b"):
        s.start(s.config(name, rate_limit=limit))
    enqueued = now_ms()
    s.enqueue([{"job_id": "fleet-0", "payload": payload("fleet-0")}])
    lo, _ = request_bracket(s.mock, 1, since_ms=enqueued)
    s.mock.set_faults(rate_limit=0)
    wait_state(s, "fleet-0", "retrying")
    jobs = make_jobs("fleet", 12)[1:]
    s.enqueue(jobs)  # both instances are idle: whichever takes them must wait
    s.wait_finished(12, timeout=10)
    arrivals = sorted(d["arrival_ms"] for d in s.mock.datamarts()["datamarts"])
    assert len(arrivals) == 12
    assert arrivals[0] >= lo + 2000, (lo, arrivals)
    assert s.mock.stats()["requests"] == 13
    s.assert_settled()


def test_max_attempts_exhausted_is_dead_with_the_last_error_and_the_exact_payload(chaos):
    s = chaos()
    s.start(s.config(queue={"max_attempts": 3}))
    # two 500s, then 503s: the outcome must carry the last one
    s.mock.set_faults(fail_first=2, fail_first_status=500, error_503=1)
    s.redis.hset(f"{PREFIX}:batch:dead-batch", "total", 1)
    body = ('{ "tableList": [{"columns": [{"name": "id"}], "name": "orders"}],\n\t'
            '"datasourceName": "postgres-main", "label": "Umsätze ☃ 😀", "name": "dead-1" }\r\n')
    s.enqueue([{"job_id": "dead-1", "tenant": "acme", "batch": "dead-batch",
                "reply_to": "dead-inbox", "payload": body}])
    outcome = s.wait_finished(1, timeout=15)["dead-1"][0]
    assert without_time(outcome) == {
        "event": "job", "job_id": "dead-1", "status": "dead",
        "error_code": "SERVICE_UNAVAILABLE", "error_message": "Service unavailable",
        "error_source": "api", "http_status": "503", "attempts": "3", "tenant": "acme",
        "batch": "dead-batch"}
    assert s.mock.stats()["requests"] == 3

    entries = s.raw.xrange(DEAD)
    assert len(entries) == 1
    dead = {dh.decode(k): v for k, v in entries[0][1].items()}
    assert dead.pop("payload") == body.encode()  # byte for byte
    assert {k: dh.decode(v) for k, v in dead.items()} == {**outcome, "reply_to": "dead-inbox"}

    stored = s.redis.hgetall(f"{PREFIX}:job:dead-1")
    assert stored["state"] == "dead" and stored["error_code"] == "SERVICE_UNAVAILABLE"
    assert 0 < s.redis.ttl(f"{PREFIX}:job:dead-1") <= 3600
    batch = s.redis.hgetall(f"{PREFIX}:batch:dead-batch")
    assert batch["dead"] == "1" and "finished_ms" in batch
    assert [without_time(b) for b in s.results.batches()] == [
        {"event": "batch", "batch": "dead-batch", "total": "1", "created": "0", "failed": "0",
         "dead": "1"}]
    reply = json.loads(s.redis.lrange(f"{PREFIX}:reply:dead-inbox", 0, -1)[0])
    assert reply["status"] == "dead" and reply["error_code"] == "SERVICE_UNAVAILABLE"
    s.assert_settled()


def test_max_age_ends_the_retries(chaos):
    s = chaos("--error-500", "1")
    s.start(s.config(queue={"max_attempts": 1000, "max_age_s": 2}))
    enqueued = now_ms()
    s.enqueue([{"job_id": "old-1", "payload": payload("old-1")}])
    outcome = s.wait_finished(1, timeout=10)["old-1"][0]
    assert outcome["status"] == "dead", outcome
    assert outcome["error_code"] == "INTERNAL_SERVER_ERROR"
    assert outcome["http_status"] == "500"
    attempts = int(outcome["attempts"])
    assert 2 <= attempts < 1000
    assert attempts == s.mock.stats()["requests"]
    age = int(outcome["finished_ms"]) - enqueued
    # it may stop as soon as the next attempt would come too late, but not much before or after
    assert 2000 - QUEUE["backoff_max_ms"] <= age <= 2000 + QUEUE["backoff_max_ms"] + 1500, age
    assert s.redis.xlen(DEAD) == 1
    s.assert_settled()


# ==== circuit breaker ====

def test_breaker_stops_submissions_probes_one_at_a_time_and_spends_no_attempts(chaos):
    # answers take 300 ms, so two probes at once would show in concurrent_requests
    s = chaos("--error-503", "1", "--latency-ms", "300")
    s.start(s.config(api={"max_inflight": 8},
                     breaker={"enabled": "yes", "consecutive": 5, "failure_ratio": 0.5,
                              "window": 20, "probe_interval_ms": 1000, "probe_max_ms": 2000}))
    jobs = make_jobs("brk", 40)
    s.enqueue(jobs)
    request_bracket(s.mock, 5, since_ms=now_ms())
    time.sleep(1.0)  # the requests in flight when it opened come back
    samples, peak = watch_mock(s.mock, 6.0)
    grown = samples[-1][1] - samples[0][1]
    probes = increments(samples)
    # probes only: the first 1 s after opening, then every 2 s (doubling, capped)
    assert 1 <= grown <= 5, f"{samples}\n{s.diagnose()}"
    assert peak <= 1, f"{peak} requests at once while the breaker was open"
    assert all(b - a >= 0.8 for a, b in zip(probes, probes[1:])), probes
    assert s.finals() == {}, "a job finished while the breaker was open"
    # what `datamartctl stats` shows
    assert s.redis.get(f"{dh.PREFIX}:ratelimit:breaker").startswith("open: the API keeps failing")

    s.mock.set_faults(error_503=0)
    s.wait_finished(len(jobs), timeout=15)
    finals = s.assert_all_created_once(jobs)
    stats = s.mock.stats()
    # an attempt is a request sent: meeting the open breaker cost none
    assert sum(int(o["attempts"]) for o in finals.values()) == stats["requests"]
    assert stats["requests"] < 2 * len(jobs)
    assert s.redis.get(f"{dh.PREFIX}:ratelimit:breaker").startswith("closed")
    s.assert_settled()


# ==== crash recovery ====

def test_chaos1_sigkill_three_times_every_job_created_exactly_once(chaos):
    s = chaos("--latency-ms", "50")
    config = s.config(api={"max_inflight": 16})
    daemon = s.start(config)
    jobs = make_jobs("c1", 2000)
    s.enqueue(jobs)
    started = time.monotonic()
    for mark in (300, 800, 1300):
        s.wait_finished(mark, timeout=30)
        in_flight = s.mock.stats()["concurrent_requests"]
        s.kill(daemon)
        print(f"SIGKILL at {len(s.finals())} outcomes, {in_flight} requests in flight")
        daemon = s.start(config)
    s.wait_finished(len(jobs), timeout=60)
    print(f"2000 jobs with 3 crashes in {time.monotonic() - started:.1f} s")
    time.sleep(0.3)  # a late second outcome would land now
    finals = s.assert_all_created_once(jobs)
    recovered = [o for o in finals.values() if o.get("recovered") == "1"]
    assert all(int(o["attempts"]) >= 2 for o in recovered), recovered
    print(f"{len(recovered)} recovered, mock {s.mock.stats()}")
    s.assert_settled()


def orphans_of(s, consumer):
    """The job_ids of the entries pending for consumer."""
    entries = s.redis.xpending_range(JOBS, dh.GROUP, "-", "+", 10000, consumername=consumer)
    ids = []
    for e in entries:
        found = s.redis.xrange(JOBS, e["message_id"], e["message_id"])
        if found:
            ids.append(found[0][1]["job_id"])
    return ids


def test_chaos2_survivor_takes_over_a_killed_instance_within_claim_idle(chaos):
    s = chaos("--latency-ms", "50")
    a = s.start(s.config("a", api={"max_inflight": 8}))
    s.start(s.config("b", api={"max_inflight": 8}))
    jobs = make_jobs("c2", 400)
    s.enqueue(jobs)
    s.wait_finished(100, timeout=20)
    s.kill(a)
    killed = time.monotonic()
    orphans = orphans_of(s, "chaos-a")
    assert orphans, "the killed instance held no job: nothing was tested"

    def orphans_done():
        finals = s.finals()
        return all(j in finals for j in orphans)
    harness.wait_until(orphans_done, timeout=CLAIM_IDLE_MS / 1000 + 4, interval=0.05,
                       message=f"the {len(orphans)} jobs of the killed instance")
    taken_over = time.monotonic() - killed
    s.wait_finished(len(jobs), timeout=15)
    print(f"{len(orphans)} orphans finished {taken_over:.2f} s after the kill")
    time.sleep(0.3)
    s.assert_all_created_once(jobs)
    assert orphans_of(s, "chaos-a") == []
    s.assert_settled()


def test_a_slow_live_request_is_never_taken_over(chaos):
    """Requests take 5 s, 2.5 times claim_idle_ms: the lease keeps the other instance off."""
    s = chaos("--latency-ms", "5000")
    for name in ("a", "b"):
        s.start(s.config(name))
    jobs = make_jobs("slow", 3)
    s.enqueue(jobs)
    s.wait_finished(len(jobs), timeout=15)
    time.sleep(0.5)
    finals = s.assert_all_created_once(jobs)
    for o in finals.values():
        assert o["attempts"] == "1" and "recovered" not in o, o
    stats = s.mock.stats()
    assert stats["requests"] == 3 and stats["duplicates"] == 0
    s.assert_settled()


def test_chaos3_every_api_fault_at_once_still_creates_everything_once(chaos):
    s = chaos("--error-500", "0.1", "--error-502", "0.1", "--error-503", "0.05",
              "--error-504", "0.05", "--rate-limit", "0.1", "--retry-after", "1",
              "--hang", "0.05", "--reset", "0.05", "--lost-answer", "0.05", "--seed", "5")
    s.start(s.config(api={"request_timeout_ms": 1000, "max_inflight": 32},
                     queue={"max_attempts": 40}))
    jobs = make_jobs("c3", 200)
    started = time.monotonic()
    s.enqueue(jobs)
    s.wait_finished(len(jobs), timeout=120)
    print(f"200 jobs through every fault in {time.monotonic() - started:.1f} s")
    time.sleep(0.3)
    finals = s.assert_all_created_once(jobs)
    stats = s.mock.stats()
    print(f"mock {stats}")
    recovered = [o for o in finals.values() if o.get("recovered") == "1"]
    # only a lost answer creates a datamart without telling; each such job comes back recovered
    assert 1 <= len(recovered) <= stats["faults"]["lost_answer"], (len(recovered), stats)
    assert all(int(o["attempts"]) >= 2 for o in recovered)
    assert sum(int(o["attempts"]) for o in finals.values()) == stats["requests"]
    s.assert_settled()


def test_chaos4_redis_restarted_twice_loses_nothing_and_work_resumes_quickly(chaos, tmp_path):
    server = dh.start_aof_redis(harness.RedisServer(tmp_path / "aof", appendonly=True))
    try:
        s = chaos("--latency-ms", "50", redis=server)
        s.start(s.config(api={"max_inflight": 8}))
        jobs = make_jobs("c4", 800)
        s.enqueue(jobs)
        for mark, crash in ((150, True), (450, False)):
            s.wait_finished(mark, timeout=30)
            if crash:
                dh.redis_kill(server)
            else:
                assert server.stop() == 0
            time.sleep(1.0)
            dh.start_aof_redis(server)
            back = time.monotonic()
            s.connect()
            requests, outcomes = s.mock.stats()["requests"], len(s.results.jobs())

            def resumed():
                return (s.mock.stats()["requests"] > requests
                        and len(s.results.jobs()) > outcomes)
            harness.wait_until(resumed, timeout=10, interval=0.02,
                               message="new requests and outcomes after Redis came back")
            delay = time.monotonic() - back
            print(f"resumed {delay:.2f} s after Redis came back ({'SIGKILL' if crash else 'stop'})")
            assert delay <= 2.0, f"work resumed {delay:.2f} s after Redis was back"
        s.wait_finished(len(jobs), timeout=30)
        time.sleep(0.3)
        s.assert_all_created_once(jobs)
        s.assert_settled()
    finally:
        server.stop()


# ==== dead letters ====

def requeue_all_dead(s):
    """`datamartctl dead requeue --all`, which must succeed."""
    done = subprocess.run([harness.binary("datamartctl"), "--redis", s.server.address,
                           "--prefix", PREFIX, "dead", "requeue", "--all"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done


def test_chaos5_everything_dead_then_requeued_after_the_mock_heals(chaos):
    s = chaos("--error-500", "1")
    s.start(s.config(queue={"max_attempts": 3}))
    batch = "c5-batch"
    jobs = make_jobs("c5", 40, batch=batch)
    for job in jobs[:3]:
        job["reply_to"] = "c5-inbox"
    s.redis.hset(f"{PREFIX}:batch:{batch}", "total", len(jobs))
    s.enqueue(jobs)
    dead = s.wait_finished(len(jobs), timeout=30)
    for job_id, (o,) in dead.items():
        assert without_time(o) == {
            "event": "job", "job_id": job_id, "status": "dead",
            "error_code": "INTERNAL_SERVER_ERROR", "error_message": "Internal server error",
            "error_source": "api", "http_status": "500", "attempts": "3", "batch": batch}
    assert s.mock.stats()["requests"] == 3 * len(jobs)
    letters = {f["job_id"]: f for _, f in s.redis.xrange(DEAD)}
    assert sorted(letters) == sorted(j["job_id"] for j in jobs)
    for job in jobs:
        assert letters[job["job_id"]]["payload"] == job["payload"]
        assert letters[job["job_id"]].get("reply_to") == job.get("reply_to")
    batch_events = s.results.batches()
    assert [(b["created"], b["dead"]) for b in batch_events] == [("0", "40")]

    s.mock.set_faults(error_500=0)
    requeue_all_dead(s)

    def all_created_again():
        created = [o for o in s.results.jobs() if o["status"] == "created"]
        return len(created) >= len(jobs)
    harness.wait_until(all_created_again, timeout=20, interval=0.05,
                       message="every requeued job created")
    time.sleep(0.3)
    by_id = s.results.by_job_id()
    for job in jobs:
        first, second = by_id[job["job_id"]]  # the dead outcome, then the new one
        assert first["status"] == "dead"
        assert without_time(second) == {
            "event": "job", "job_id": job["job_id"], "status": "created",
            "datamart_id": job["job_id"], "http_status": "200", "attempts": "1", "batch": batch}
    assert s.mock.stats()["created"] == len(jobs)
    assert s.redis.xlen(DEAD) == 0
    counters = s.redis.hgetall(f"{PREFIX}:batch:{batch}")
    assert (counters["created"], counters["dead"], counters["total"]) == ("40", "0", "40")
    assert "finished_ms" in counters
    # requeue --all counts every job back into the batch at once: it completes once more, at the end
    batch_events = [(b["created"], b["failed"], b["dead"]) for b in s.results.batches()]
    assert batch_events == [("0", "0", "40"), ("40", "0", "0")], batch_events
    replies = [json.loads(r) for r in s.redis.lrange(f"{PREFIX}:reply:c5-inbox", 0, -1)]
    assert sorted(r["status"] for r in replies) == ["created"] * 3 + ["dead"] * 3
    s.assert_settled()


# ==== credentials ====

def test_chaos6_token_rotation_pauses_until_the_new_token_is_loaded(chaos, tmp_path):
    old, new = "dmtest-chaos-old-4be1a9c0d2", "dmtest-chaos-new-93f7e6b1a5"
    token_file = tmp_path / "api-token"
    token_file.write_text(old + "\n")
    notify = dh.NotifyListener()
    try:
        s = chaos("--latency-ms", "20", mock_token=old)
        # max_attempts 3: a paused job waits however many probes it carries
        config = s.config(api={"token_file": token_file, "max_inflight": 4},
                          queue={"max_attempts": 3},
                          breaker={"enabled": "yes", "probe_interval_ms": 1000,
                                   "probe_max_ms": 2000})
        daemon = s.start(config, token=None, notify_socket=notify.path)
        jobs = make_jobs("c6", 300)
        s.enqueue(jobs)
        s.wait_finished(60, timeout=20)
        s.mock.set_tokens([new])

        def says_why():
            answer = daemon.try_get("/readyz")
            return answer is not None and PAUSE_TEXT.search(answer[1])
        harness.wait_until(says_why, timeout=10, message="/readyz naming the token problem")
        print(f"/readyz during the pause: {daemon.get('/readyz')}")
        mark = len(notify.poll())
        notify.wait_for(lambda m: PAUSE_TEXT.search(m.get("STATUS", "")), start=mark,
                        timeout=5, message="STATUS= naming the token problem")
        time.sleep(0.5)  # answers of requests already sent arrive
        finished = len(s.finals())
        samples, peak = watch_mock(s.mock, 4.0)
        assert samples[-1][1] - samples[0][1] <= 4, f"not probing one by one: {samples}"
        assert peak <= 1, f"{peak} requests at once during the auth pause"
        assert len(s.finals()) == finished, "jobs finished during the auth pause"
        assert all(o["status"] == "created" for o in s.results.jobs())

        token_file.write_text(new + "\n")
        daemon.send_signal(signal.SIGHUP)
        s.wait_finished(len(jobs), timeout=20)
        time.sleep(0.3)
        s.assert_all_created_once(jobs)
        assert daemon.get("/readyz")[0] == 200
        assert s.mock.stats()["auth_failures"] <= 4 + 6  # those in flight, then the probes
        daemon.assert_token_never_logged(old, new)
        s.assert_settled()
    finally:
        notify.close()


# ==== rate limit ====

RATE, BURST, SECONDS = 20, 5, 20


def assert_rate_accuracy(arrivals):
    """No 1-second window above rate + burst; the mean after the burst within 5 % of the rate."""
    arrivals = sorted(arrivals)
    for i, start in enumerate(arrivals):
        in_window = 0
        for a in arrivals[i:]:
            if a >= start + 1000:
                break
            in_window += 1
        assert in_window <= RATE + BURST, f"{in_window} requests in the second from {start}"
    span_s = (arrivals[-1] - arrivals[0]) / 1000
    mean = (len(arrivals) - BURST) / span_s
    print(f"{len(arrivals)} requests in {span_s:.2f} s: {mean:.2f}/s after the burst")
    assert abs(mean - RATE) <= 0.05 * RATE, mean


@pytest.mark.parametrize("instances", [1, 2])
def test_chaos7_rate_limit_accuracy(chaos, instances):
    s = chaos()
    scope = "cluster" if instances > 1 else "local"
    daemons = [s.start(s.config(name, rate_limit={"rate": RATE, "burst": BURST, "scope": scope}))
               for name in "ab"[:instances]]
    jobs = make_jobs(f"c7x{instances}", RATE * SECONDS + BURST)
    s.enqueue(jobs)
    s.wait_finished(len(jobs), timeout=SECONDS + 10)
    s.assert_all_created_once(jobs)
    assert_rate_accuracy([d["arrival_ms"] for d in s.mock.datamarts()["datamarts"]])
    if instances > 1:  # both took part, so the budget really was shared
        for daemon in daemons:
            sent = daemon.metrics().get('datamartd_http_requests_total{code="200"}', 0)
            assert sent >= 0.2 * len(jobs), sent
    s.assert_settled()
