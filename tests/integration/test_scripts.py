"""The daemon's claim and publish scripts (daemon/scripts/*.lua) run directly in a real redis-server:
what a job hash holds after each step, for a new job (the short path: one HSET in the claim, no
clean-up in the publish) and for a job with leftovers of an earlier attempt (the full clean-up);
the publish that reads the next entries into the slots it frees and claims them at once; one
publish settling several jobs, each on its own; the release of a claim never sent; and the
publish benchmark, which drives the script the same way."""
import json
import subprocess
import sys

import pytest

import harness

PREFIX = "t"
GROUP = "datamartd"
CONSUMER = "c1"
JOBS = f"{PREFIX}:jobs"
RESULTS = f"{PREFIX}:results"
RETRY = f"{PREFIX}:retry"
DEAD = f"{PREFIX}:dead"


@pytest.fixture
def r(tmp_path):
    server = harness.RedisServer(tmp_path / "redis").start()
    client = server.client()
    client.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
    yield client
    server.stop()


def script(r, name):
    return r.register_script(harness.daemon_script(name))


def enqueue_and_read(r, job_id):
    entry = r.xadd(JOBS, {"job_id": job_id, "payload": "{}"})
    r.xreadgroup(GROUP, CONSUMER, {JOBS: ">"}, count=1)
    return entry


def claim(r, job_id, entry, now, nonce):
    return script(r, "claim")(keys=[f"{PREFIX}:job:{job_id}", JOBS],
                              args=[GROUP, entry, CONSUMER, now, nonce])


def publish_final(r, job_id, entry, now, fresh, outcome, take=0, claims=0):
    """The publish's verdict, or (verdict, entries read) when it takes new entries."""
    verdicts, entries = publish_batch(r, [(job_id, entry, fresh, outcome)], now, take, claims)
    return verdicts[0] if take == 0 else (verdicts[0], entries)


def publish_batch(r, jobs, now, take=0, claims=0):
    """One publish settling every (job_id, entry, fresh, outcome[, batch[, mode, extra]]) of
    jobs: (verdicts, entries)."""
    keys, args = [JOBS, RESULTS, RETRY, DEAD], [GROUP, CONSUMER, 3600, 1000, 60, now, take, claims,
                                                 f"{PREFIX}:job:", "c1:7:", 41, len(jobs)]
    for job_id, entry, fresh, outcome, *rest in jobs:
        batch, mode, extra = (rest + ["", "final", ""][len(rest):])
        keys += [f"{PREFIX}:job:{job_id}", f"{PREFIX}:batch:{batch}" if batch else JOBS, JOBS]
        args += [entry, mode, "", batch, outcome.get("status", ""), job_id, extra, "",
                 "1" if fresh else "", len(outcome)] + [v for kv in outcome.items() for v in kv]
    reply = script(r, "publish")(keys=keys, args=args)
    return reply[0], reply[1] if len(reply) > 1 else []


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


def test_publish_takes_the_next_entries_and_claims_as_many_as_it_has_permits_for(r):
    entry = enqueue_and_read(r, "b")
    claim(r, "b", entry, 1000, "n1")
    x = r.xadd(JOBS, {"job_id": "x", "payload": "{}"})
    y = r.xadd(JOBS, {"job_id": "y", "payload": "{}"})
    z = r.xadd(JOBS, {"job_id": "z", "payload": "{}"})

    verdict, entries = publish_final(r, "b", entry, 2000, True, created("b", 2000), take=2,
                                     claims=1)
    assert verdict == "ok"
    assert entries == [[x, ["job_id", "x", "payload", "{}"], ["claimed", 0, 0, 2000, 1], "x",
                        "c1:7:41"],
                       [y, ["job_id", "y", "payload", "{}"]]]
    assert r.hgetall(f"{PREFIX}:job:x") == {
        "state": "active", "entry": x, "consumer": CONSUMER, "started_ms": "2000",
        "first_seen_ms": "2000", "inflight": "c1:7:41"}
    assert r.exists(f"{PREFIX}:job:y") == 0  # read, not claimed: the daemon claims it later
    pending = r.xpending_range(JOBS, GROUP, "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(x, CONSUMER), (y, CONSUMER)]
    assert r.xlen(JOBS) == 3 and z in [i for i, _ in r.xrange(JOBS)]


def test_a_taken_entry_without_a_clean_job_id_is_claimed_under_its_entry_id(r):
    """As job_create reads it: a missing, broken or late (after 64 pairs) job_id means the entry
    id; the first of two job_id fields counts."""
    entry = enqueue_and_read(r, "b")
    claim(r, "b", entry, 1000, "n1")
    ids = [r.xadd(JOBS, {"job_id": job_id, "payload": "{}"})
           for job_id in ("bad id!", "x" * 129, "")]
    ids.append(r.xadd(JOBS, {"payload": "{}"}))
    ids.append(r.xadd(JOBS, {**{f"f{i}": "v" for i in range(64)}, "job_id": "late"}))
    longest = r.xadd(JOBS, {"job_id": "x" * 128, "payload": "{}"})
    r.execute_command("XADD", JOBS, "*", "job_id", "first", "job_id", "second")

    verdict, entries = publish_final(r, "b", entry, 2000, True, created("b", 2000), take=7,
                                     claims=7)
    assert verdict == "ok"
    assert [e[3] for e in entries] == ids + ["x" * 128, "first"]
    assert [e[2][0] for e in entries] == ["claimed"] * 7
    assert [e[4] for e in entries] == [f"c1:7:{n}" for n in range(41, 48)]
    assert r.hget(f"{PREFIX}:job:{ids[0]}", "entry") == ids[0]
    assert r.hget(f"{PREFIX}:job:{'x' * 128}", "entry") == longest
    assert r.exists(f"{PREFIX}:job:late") == 0 and r.exists(f"{PREFIX}:job:second") == 0


def test_a_taken_duplicate_is_answered_like_a_claim(r):
    """A finished job_id gives its outcome back; one held by another live entry is dropped."""
    entry = enqueue_and_read(r, "b")
    claim(r, "b", entry, 1000, "n1")
    r.hset(f"{PREFIX}:job:done", mapping=created("done", 500) | {"state": "created"})
    holder = r.xadd(JOBS, {"job_id": "held", "payload": "{}"})
    r.xreadgroup(GROUP, "other", {JOBS: ">"}, count=1)
    r.hset(f"{PREFIX}:job:held", mapping={"state": "active", "entry": holder})
    again = r.xadd(JOBS, {"job_id": "done", "payload": "{}"})
    twin = r.xadd(JOBS, {"job_id": "held", "payload": "{}"})

    verdict, entries = publish_final(r, "b", entry, 2000, True, created("b", 2000), take=2,
                                     claims=2)
    assert verdict == "ok"
    assert entries[0][0] == again and entries[0][2][0] == "finished"
    assert dict(zip(entries[0][2][1::2], entries[0][2][2::2]))["datamart_id"] == "dm-1"
    assert entries[1][0] == twin and entries[1][2] == ["dropped", holder]
    assert [i for i, _ in r.xrange(JOBS)] == [holder, again]  # the twin is acked and deleted
    assert entries[1][4] == "c1:7:42"


def test_a_stale_publish_still_frees_its_slot(r):
    entry = enqueue_and_read(r, "d")
    r.xclaim(JOBS, GROUP, "other", 0, [entry])
    nxt = r.xadd(JOBS, {"job_id": "n", "payload": "{}"})
    verdict, entries = publish_final(r, "d", entry, 2000, True, created("d", 2000), take=1,
                                     claims=0)
    assert verdict == "stale" and entries == [[nxt, ["job_id", "n", "payload", "{}"]]]
    assert r.exists(f"{PREFIX}:job:d") == 0 and r.exists(f"{PREFIX}:job:n") == 0


def test_an_empty_stream_takes_nothing(r):
    entry = enqueue_and_read(r, "e")
    claim(r, "e", entry, 1000, "n1")
    assert publish_final(r, "e", entry, 2000, True, created("e", 2000), take=3,
                         claims=3) == ("ok", [])


def test_a_batch_settles_each_job_on_its_own(r):
    """One publish for three jobs: one settles, one is no longer ours, one meets a key of the
    wrong type. The last wrote nothing, so once the key is mended its outcome appears once."""
    entries = {job_id: enqueue_and_read(r, job_id) for job_id in ("a", "b", "c")}
    for i, (job_id, entry) in enumerate(entries.items()):
        claim(r, job_id, entry, 1000, f"n{i}")
    r.xclaim(JOBS, GROUP, "c2", 0, [entries["b"]])
    r.set(f"{PREFIX}:batch:bad", "not a hash")

    verdicts, _ = publish_batch(r, [("a", entries["a"], True, created("a", 2000)),
                                    ("b", entries["b"], True, created("b", 2000)),
                                    ("c", entries["c"], True, created("c", 2000), "bad")], 2000)
    assert verdicts[:2] == ["ok", "stale"]
    assert verdicts[2] == "WRONGTYPE t:batch:bad is not a hash: outcome not published"
    assert [fields for _, fields in r.xrange(RESULTS)] == [created("a", 2000)]
    assert r.hget(f"{PREFIX}:job:b", "state") == r.hget(f"{PREFIX}:job:c", "state") == "active"
    assert [e["message_id"] for e in r.xpending_range(JOBS, GROUP, "-", "+", 10)] == [
        entries["b"], entries["c"]]

    r.delete(f"{PREFIX}:batch:bad")
    verdicts, _ = publish_batch(r, [("c", entries["c"], True, created("c", 2000), "bad")], 2100)
    assert verdicts == ["ok"]
    assert [fields["job_id"] for _, fields in r.xrange(RESULTS)] == ["a", "c"]
    assert r.hgetall(f"{PREFIX}:batch:bad") == {"created": "1"}
    assert r.hget(f"{PREFIX}:job:c", "state") == "created"


def test_an_error_inside_one_jobs_settling_leaves_the_others_settled(r):
    """A job hash overwritten with a string after its claim: HDEL, its first write, fails inside
    the script; the error is that job's verdict and the next job of the call is still settled."""
    entries = {job_id: enqueue_and_read(r, job_id) for job_id in ("x", "y")}
    for job_id, entry in entries.items():
        claim(r, job_id, entry, 1000, "n1")
    r.set(f"{PREFIX}:job:x", "not a hash")
    verdicts, _ = publish_batch(r, [(job_id, entry, True, created(job_id, 2000))
                                    for job_id, entry in entries.items()], 2000)
    assert verdicts[0].startswith("WRONGTYPE") and verdicts[1] == "ok"
    assert [fields["job_id"] for _, fields in r.xrange(RESULTS)] == ["y"]
    assert [e["message_id"] for e in r.xpending_range(JOBS, GROUP, "-", "+", 10)] == [
        entries["x"]]

def test_a_results_stream_of_the_wrong_type_stops_every_publish_before_any_write(r):
    entries = {job_id: enqueue_and_read(r, job_id) for job_id in ("d", "e")}
    for job_id, entry in entries.items():
        claim(r, job_id, entry, 1000, "n1")
    r.set(RESULTS, "not a stream")
    verdicts, _ = publish_batch(r, [(job_id, entry, True, created(job_id, 2000))
                                    for job_id, entry in entries.items()], 2000)
    assert verdicts == ["WRONGTYPE t:results is not a stream: outcome not published"] * 2
    assert r.hget(f"{PREFIX}:job:d", "state") == r.hget(f"{PREFIX}:job:e", "state") == "active"
    assert r.xpending(JOBS, GROUP)["pending"] == 2


def test_release_withdraws_only_its_own_claim_and_leaves_the_entry_pending(r):
    """Shutdown with a job claimed but never sent: its nonce goes, so the next claim (a new
    nonce) counts no attempt; a nonce that is not the releaser's stays."""
    mine, theirs = enqueue_and_read(r, "m"), enqueue_and_read(r, "o")
    claim(r, "m", mine, 1000, "c1:7:5")
    claim(r, "o", theirs, 1000, "other:1:1")
    verdicts, _ = publish_batch(r, [("m", mine, True, {}, "", "release", "c1:7:5"),
                                    ("o", theirs, True, {}, "", "release", "c1:7:6")], 2000)
    assert verdicts == ["released", "released"]
    assert "inflight" not in r.hgetall(f"{PREFIX}:job:m")
    assert r.hget(f"{PREFIX}:job:o", "inflight") == "other:1:1"
    assert r.xpending(JOBS, GROUP)["pending"] == 2 and r.xlen(RESULTS) == 0
    assert claim(r, "m", mine, 3000, "c1:8:1") == ["claimed", 0, 0, 1000, 0]


def test_the_publish_benchmark_speaks_the_scripts_protocol(tmp_path):
    """bench/publish.sh drives publish.lua as the daemon does: it must still run every outcome
    through it, and settling 16 per call must take fewer Redis calls per job than one."""
    out = tmp_path / "publish.json"
    proc = subprocess.run([sys.executable, harness.SOURCE_DIR / "bench" / "run.py", "publish",
                           "--build-dir", tmp_path, "--out", out, "--jobs", "320",
                           "--batch", "1,16", "--inflight", "16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    one, sixteen = json.loads(out.read_text())["runs"]
    assert (one["batch"], sixteen["batch"]) == (1, 16)
    assert one["jobs"] == sixteen["jobs"] == 320
    assert sixteen["redis_calls_per_job"] < one["redis_calls_per_job"]
