"""The daemon's claim and publish scripts (daemon/scripts/*.lua) run directly in a real redis-server:
what a job hash holds after each step, for a new job (the short path: one HSET in the claim, no
clean-up in the publish) and for a job with leftovers of an earlier attempt (the full clean-up)."""
import pytest

import harness

PREFIX = "t"
GROUP = "datamartd"
CONSUMER = "c1"
JOBS = f"{PREFIX}:jobs"
RESULTS = f"{PREFIX}:results"
RETRY = f"{PREFIX}:retry"
DEAD = f"{PREFIX}:dead"
SCRIPTS = harness.SOURCE_DIR / "daemon" / "scripts"


@pytest.fixture
def r(tmp_path):
    server = harness.RedisServer(tmp_path / "redis").start()
    client = server.client()
    client.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
    yield client
    server.stop()


def script(r, name):
    return r.register_script((SCRIPTS / f"{name}.lua").read_text())


def enqueue_and_read(r, job_id):
    entry = r.xadd(JOBS, {"job_id": job_id, "payload": "{}"})
    r.xreadgroup(GROUP, CONSUMER, {JOBS: ">"}, count=1)
    return entry


def claim(r, job_id, entry, now, nonce):
    return script(r, "claim")(keys=[f"{PREFIX}:job:{job_id}", JOBS],
                              args=[GROUP, entry, CONSUMER, now, nonce])


def publish_final(r, job_id, entry, now, fresh, outcome):
    fields = [v for kv in outcome.items() for v in kv]
    return script(r, "publish")(
        keys=[f"{PREFIX}:job:{job_id}", JOBS, RESULTS, JOBS, JOBS, RETRY, DEAD],
        args=[GROUP, entry, CONSUMER, "final", 3600, 1000, 60, "", "", outcome["status"], now,
              job_id, "", "", "1" if fresh else ""] + fields)


def created(job_id, now):
    return {"event": "job", "job_id": job_id, "status": "created", "datamart_id": "dm-1",
            "http_status": "200", "attempts": "1", "finished_ms": str(now)}


def test_new_job_claim_writes_once_and_says_fresh(r):
    entry = enqueue_and_read(r, "a")
    assert claim(r, "a", entry, 1000, "n1") == ["claimed", 0, 0, 1000, 1]
    assert r.hgetall(f"{PREFIX}:job:a") == {
        "state": "active", "entry": entry, "consumer": CONSUMER, "started_ms": "1000",
        "first_seen_ms": "1000", "inflight": "n1"}
    assert r.ttl(f"{PREFIX}:job:a") == -1

    # the same claim again (its reply was lost): the hash exists now, so not fresh; nothing changes
    assert claim(r, "a", entry, 1005, "n1") == ["claimed", 0, 0, 1000, 0]
    assert r.hget(f"{PREFIX}:job:a", "first_seen_ms") == "1000"
    assert r.hget(f"{PREFIX}:job:a", "started_ms") == "1005"


def test_new_job_without_request_has_no_inflight(r):
    entry = enqueue_and_read(r, "local")
    assert claim(r, "local", entry, 7, "") == ["claimed", 0, 0, 7, 1]
    assert "inflight" not in r.hgetall(f"{PREFIX}:job:local")


def test_fresh_final_publish_leaves_the_outcome_only(r):
    entry = enqueue_and_read(r, "b")
    claim(r, "b", entry, 1000, "n1")
    assert publish_final(r, "b", entry, 2000, True, created("b", 2000)) == "ok"
    stored = r.hgetall(f"{PREFIX}:job:b")
    assert stored == {"state": "created", "entry": entry, "consumer": CONSUMER,
                      "started_ms": "1000", "first_seen_ms": "1000", **created("b", 2000)}
    assert 0 < r.ttl(f"{PREFIX}:job:b") <= 3600
    assert r.xlen(JOBS) == 0 and r.xpending(JOBS, GROUP)["pending"] == 0
    assert [fields for _, fields in r.xrange(RESULTS)] == [created("b", 2000)]


def test_leftovers_of_an_earlier_attempt_are_cleaned(r):
    """A first attempt that never reached the API (attempts stays 0) was parked for a retry; an
    earlier claim of the second attempt died with its request in flight."""
    job = f"{PREFIX}:job:c"
    r.hset(job, mapping={"state": "queued", "first_seen_ms": "500", "attempts": "0",
                         "last_error_code": "CONNECT_ERROR", "last_error_message": "refused",
                         "last_http_status": "0", "inflight": "dead-claim"})
    r.zadd(RETRY, {"c": 1})
    r.expire(job, 100)
    entry = enqueue_and_read(r, "c")

    assert claim(r, "c", entry, 1000, "n2") == ["claimed", 1, 1, 500, 0]
    assert r.ttl(job) == -1
    stored = r.hgetall(job)
    assert stored["maybe_sent"] == "1" and stored["attempts"] == "1"
    assert stored["inflight"] == "n2" and stored["first_seen_ms"] == "500"

    assert publish_final(r, "c", entry, 2000, False, created("c", 2000)) == "ok"
    stored = r.hgetall(job)
    for gone in ("inflight", "maybe_sent", "last_error_code", "last_error_message",
                 "last_http_status"):
        assert gone not in stored
    assert stored["state"] == "created" and stored["attempts"] == "1"
    assert r.zscore(RETRY, "c") is None


def test_stale_consumer_changes_nothing(r):
    entry = enqueue_and_read(r, "d")
    r.xclaim(JOBS, GROUP, "other", 0, [entry])
    assert claim(r, "d", entry, 1000, "n1") == ["stale"]
    assert r.exists(f"{PREFIX}:job:d") == 0
    assert publish_final(r, "d", entry, 2000, True, created("d", 2000)) == "stale"
    assert r.exists(f"{PREFIX}:job:d") == 0
