"""databrain-mock over real HTTP: the endpoint's answers, faults, latency and admin endpoints."""
import email.utils
import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import API_PATH, LEGACY_API_PATH, datamart_body

AUTH_ERROR = {"id": None, "error": {"code": "AUTH_ERROR",
                                    "message": "Invalid or expired service token",
                                    "status": 400}}


def error(code, message, status=400):
    return {"id": None, "error": {"code": code, "message": message, "status": status}}


def run_mock(*args):
    return subprocess.run([str(harness.binary("databrain-mock")), *args], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


def statuses(mock, count, prefix, session=None):
    """POST count distinct valid bodies over one keep-alive connection; their statuses."""
    own = session is None
    session = session or mock.session()
    try:
        return [mock.post(datamart_body(f"{prefix}-{i}"), session=session).status
                for i in range(count)]
    finally:
        if own:
            session.close()


def raw_request(mock, body, token=None):
    """A connected socket that has sent one API request and not read anything."""
    data = json.dumps(body).encode()
    sock = socket.create_connection((mock.host, mock.port), timeout=5)
    sock.sendall(b"POST " + API_PATH.encode() + b" HTTP/1.1\r\nHost: mock\r\n"
                 b"Authorization: Bearer " + (token or mock.token).encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock


# --- command line -------------------------------------------------------------------------------

def test_help_and_version():
    proc = run_mock("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: databrain-mock")
    for flag in ("--listen", "--token", "--datasource", "--latency-ms", "--seed", "--error-500",
                 "--rate-limit", "--retry-after-date", "--hang", "--reset", "--lost-answer",
                 "--fail-first", "--fail-first-status", "--auth-status", "--allow-remote"):
        assert flag in proc.stdout
    version = run_mock("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("databrain-mock ")


@pytest.mark.parametrize("args, complaint", [
    (["--bogus"], "Usage"),
    (["extra"], "unexpected argument"),
    (["--error-500", "1.5"], "between 0 and 1"),
    (["--error-500", "0.6", "--hang", "0.5"], "more than 1"),
    (["--latency-ms", "fast"], "N:JITTER"),
    (["--fail-first-status", "200"], "between 400 and 599"),
    (["--auth-status", "403"], "between 400 and 401"),
    (["--token", ""], "must not be empty"),
    (["--listen", "nonsense"], "HOST:PORT"),
    (["--listen", "127.0.0.1:70000"], "HOST:PORT"),
])
def test_usage_errors(args, complaint):
    proc = run_mock(*args)
    assert proc.returncode == 2
    assert complaint in proc.stderr
    assert "listening on" not in proc.stdout


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_refuses_non_loopback_address(address):
    proc = run_mock("--listen", address)
    assert proc.returncode == 2
    assert "refusing to listen on non-loopback" in proc.stderr
    assert "--allow-remote" in proc.stderr


def test_listens_on_the_announced_port(mock):
    assert mock.host == "127.0.0.1" and mock.port > 0
    with socket.create_connection((mock.host, mock.port), timeout=5):
        pass


def test_listens_on_ipv6_loopback(tmp_path):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    program, host, port = harness.start_listening(
        [harness.binary("databrain-mock"), "--listen", "[::1]:0"], tmp_path)
    try:
        assert host == "::1" and port > 0
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/__stats")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        assert program.stop() == 0


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stop_signals_exit_zero(mock_factory, sig):
    mock = mock_factory()
    assert mock.post(datamart_body("before-stop")).status == 200
    assert mock.stop(getattr(signal, sig)) == 0
    assert "stopping" in mock.stderr_text()


# --- the endpoint -------------------------------------------------------------------------------

def test_create_answers_200_with_the_name(mock):
    resp = mock.post(datamart_body("acme-sales"))
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    assert resp.json() == {"id": "acme-sales", "error": None}
    stats = mock.stats()
    assert stats["requests"] == 1 and stats["created"] == 1
    assert stats["by_status"] == {"200": 1}


def test_name_is_escaped_in_the_answer(mock):
    name = 'quote " backslash \\ tab \t é'
    resp = mock.post(datamart_body(name))
    assert resp.status == 200
    assert resp.json()["id"] == name


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Basic bW9jay10ZXN0LXRva2Vu"},
    {"Authorization": "Bearer "},
    {"Authorization": "mock-test-token"},
])
def test_auth_error_without_a_matching_bearer_token(mock, headers):
    resp = mock.request("POST", API_PATH, datamart_body("no-auth"),
                        {"Content-Type": "application/json", **headers})
    assert resp.status == 400
    assert resp.json() == AUTH_ERROR
    assert mock.stats()["auth_failures"] == 1
    assert mock.datamarts()["datamarts"] == []


def test_bearer_scheme_is_case_insensitive(mock):
    resp = mock.request("POST", API_PATH, datamart_body("lower-bearer"),
                        {"Authorization": f"bearer {mock.token}"})
    assert resp.status == 200


def test_auth_status_401_answers_like_sibling_endpoints(mock_factory):
    mock = mock_factory("--auth-status", "401")
    resp = mock.post(datamart_body("x"), token="stale")
    assert resp.status == 401
    assert resp.json() == error("AUTHENTICATION_ERROR", "Invalid or expired service token", 401)


def test_token_is_never_logged(mock_factory):
    secret = "dbn-SECRET-0f9e8d7c6b5a"
    mock = mock_factory("--verbose", token=secret)
    assert mock.post(datamart_body("quiet")).status == 200
    assert mock.post(datamart_body("quiet"), token=secret + "x").status == 400
    assert mock.stop() == 0
    log = mock.stderr_text()
    assert "answering 200" in log  # --verbose did log the requests
    assert secret not in log


def test_any_token_is_accepted_when_none_is_configured(mock_factory):
    mock = mock_factory(token=None)
    assert mock.post(datamart_body("open"), token="anything").status == 200
    assert mock.request("POST", API_PATH, datamart_body("open2")).json() == AUTH_ERROR


TABLE = {"name": "orders", "columns": [{"name": "id"}]}


@pytest.mark.parametrize("body, message", [
    (b"not json", "Request body is not valid JSON"),
    (b"", "Request body is not valid JSON"),
    (b'{"name": "a"} trailing', "Request body is not valid JSON"),
    (b'{"name": "\xff\xfe", "datasourceName": "postgres-main"}', "Request body is not valid JSON"),
    (b"[]", "Request body must be a JSON object"),
    (b"{}", "Missing required fields: name, datasourceName, tableList"),
    ({"name": "a", "datasourceName": "postgres-main"}, "Missing required fields: tableList"),
    ({"name": "", "datasourceName": "postgres-main", "tableList": [TABLE]},
     "Missing required fields: name"),
    ({"name": "a", "datasourceName": 7, "tableList": [TABLE]},
     "Missing required fields: datasourceName"),
    ({"name": "a", "datasourceName": "postgres-main", "tableList": {}},
     "Missing required fields: tableList"),
    ({"name": "a", "datasourceName": "postgres-main", "tableList": []}, "Empty table list"),
    ({"name": "a", "datasourceName": "postgres-main", "tableList": ["orders"]},
     "Bad table/column structure: tableList[0] needs a name"),
    ({"name": "a", "datasourceName": "postgres-main",
      "tableList": [TABLE, {"columns": [{"name": "id"}]}]},
     "Bad table/column structure: tableList[1] needs a name"),
    ({"name": "a", "datasourceName": "postgres-main",
      "tableList": [{"name": "orders", "columns": []}]},
     "Bad table/column structure: tableList[0].columns must be a non-empty list"),
    ({"name": "a", "datasourceName": "postgres-main",
      "tableList": [{"name": "orders", "columns": [{"name": "id"}, {"alias": "x"}]}]},
     "Bad table/column structure: tableList[0].columns[1] needs a name"),
])
def test_invalid_request_body(mock, body, message):
    resp = mock.post(body)
    assert resp.status == 400
    assert resp.json() == error("INVALID_REQUEST_BODY", message)
    assert mock.datamarts()["datamarts"] == []


def test_unknown_datasource(mock):
    resp = mock.post(datamart_body("x", datasource="Postgres-Main"))
    assert resp.status == 400
    assert resp.json() == error("DATASOURCE_NAME_ERROR",
                                "Datasource does not exist or is not accessible")


def test_configured_datasources_replace_the_default(mock_factory):
    mock = mock_factory("--datasource", "warehouse", "--datasource", "crm")
    assert mock.post(datamart_body("a", datasource="warehouse")).status == 200
    assert mock.post(datamart_body("b", datasource="crm")).status == 200
    assert mock.post(datamart_body("c")).json()["error"]["code"] == "DATASOURCE_NAME_ERROR"


def test_duplicate_name(mock):
    assert mock.post(datamart_body("dup")).status == 200
    resp = mock.post(datamart_body("dup", datasource="postgres-main"))
    assert resp.status == 400
    assert resp.json() == error("INVALID_REQUEST_BODY", "Datamart name already exists")
    stats = mock.stats()
    assert stats["created"] == 1 and stats["duplicates"] == 1


def padded_body(name, size):
    """A valid body of exactly size bytes."""
    base = json.dumps({**datamart_body(name), "pad": ""}).encode()
    body = base[:-2] + b"x" * (size - len(base)) + b'"}'
    assert len(body) == size
    return body


def test_body_of_exactly_one_mebibyte_is_accepted(mock):
    body = padded_body("big", 1024 * 1024)
    assert mock.post(body).status == 200
    assert mock.datamarts()["datamarts"][0]["body"].encode() == body


def test_body_over_one_mebibyte_gets_413(mock):
    resp = mock.post(padded_body("too-big", 1024 * 1024 + 1))
    assert resp.status == 413
    assert resp.json() == error("PAYLOAD_TOO_LARGE", "Request body is larger than 1048576 bytes",
                                413)
    assert mock.stats()["by_status"] == {"413": 1}


def test_huge_body_gets_413_without_being_stored(mock):
    resp = mock.post(b"{" + b" " * (8 * 1024 * 1024) + b"}")
    assert resp.status == 413
    # still serving, and nothing was stored
    assert mock.post(datamart_body("after-huge")).status == 200
    assert [d["name"] for d in mock.datamarts()["datamarts"]] == ["after-huge"]


def test_other_paths_404_and_methods_405(mock):
    resp = mock.request("GET", API_PATH, headers=mock.auth_headers())
    assert resp.status == 405
    assert resp.header("Allow") == "POST"
    assert resp.json() == error("METHOD_NOT_ALLOWED", "Method not allowed; use POST", 405)
    resp = mock.request("DELETE", LEGACY_API_PATH)
    assert resp.status == 405
    resp = mock.post(datamart_body("x"), path="/api/v2/data-app/datamart")
    assert resp.status == 404
    assert resp.json() == error("NOT_FOUND", "No such endpoint", 404)
    stats = mock.stats()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"404": 1, "405": 2}


def test_query_string_is_ignored(mock):
    assert mock.post(datamart_body("q"), path=API_PATH + "?x=1").status == 200


def test_legacy_path_is_answered_and_counted_apart(mock):
    assert mock.post(datamart_body("new-path")).status == 200
    resp = mock.post(datamart_body("old-path"), path=LEGACY_API_PATH)
    assert resp.status == 200
    assert resp.json() == {"id": "old-path", "error": None}
    stats = mock.stats()
    assert stats["requests"] == 2 and stats["legacy_requests"] == 1
    paths = {d["name"]: d["path"] for d in mock.datamarts()["datamarts"]}
    assert paths == {"new-path": API_PATH, "old-path": LEGACY_API_PATH}


def test_keep_alive_reuses_one_connection(mock):
    before = mock.stats()["connections_accepted"]
    session = mock.session()
    assert statuses(mock, 20, "ka", session) == [200] * 20
    session.close()
    # the keep-alive connection plus the one this /__stats call uses
    assert mock.stats()["connections_accepted"] == before + 2


# --- faults -------------------------------------------------------------------------------------

def test_fault_rate_within_statistical_bounds(mock_factory):
    mock = mock_factory("--seed", "7", "--error-500", "0.3")
    got = statuses(mock, 1000, "rate")
    failures = got.count(500)
    assert set(got) == {200, 500}
    assert 250 <= failures <= 350
    stats = mock.stats()
    assert stats["faults"]["error_500"] == failures
    assert stats["created"] == 1000 - failures
    assert stats["by_status"] == {"200": 1000 - failures, "500": failures}


def test_gateway_errors_and_their_bodies(mock_factory):
    mock = mock_factory("--seed", "3", "--error-502", "0.2", "--error-503", "0.2",
                        "--error-504", "0.2")
    session = mock.session()
    seen = {}
    for i in range(500):
        resp = mock.post(datamart_body(f"gw-{i}"), session=session)
        seen.setdefault(resp.status, []).append(resp)
    session.close()
    for status, code, message in [(502, "BAD_GATEWAY", "Bad gateway"),
                                  (503, "SERVICE_UNAVAILABLE", "Service unavailable"),
                                  (504, "GATEWAY_TIMEOUT", "Gateway timeout")]:
        assert 60 <= len(seen[status]) <= 140, (status, len(seen[status]))
        assert seen[status][0].json() == error(code, message, status)
    assert set(seen) == {200, 502, 503, 504}


def test_a_seed_makes_a_run_reproducible(mock_factory):
    args = ("--error-500", "0.5", "--error-503", "0.2")
    first = statuses(mock_factory("--seed", "42", *args), 200, "seed")
    second = mock_factory("--seed", "42", *args)
    assert statuses(second, 200, "seed") == first
    # a reset starts the draws over
    second.reset()
    assert statuses(second, 200, "seed") == first
    other = statuses(mock_factory("--seed", "43", *args), 200, "seed")
    assert other != first
    # setting the seed at run time starts its sequence too
    second.reset()
    second.set_faults(seed=43)
    assert statuses(second, 200, "seed") == other


def test_fail_first(mock_factory):
    mock = mock_factory("--fail-first", "3")
    got = statuses(mock, 5, "ff")
    assert got == [500, 500, 500, 200, 200]
    body = mock.post(datamart_body("ff-x")).json()
    assert body == {"id": "ff-x", "error": None}
    mock.set_faults(fail_first=2, fail_first_status=503)
    assert statuses(mock, 3, "ff2") == [503, 503, 200]
    stats = mock.stats()
    assert stats["faults"]["fail_first"] == 5
    assert [d["name"] for d in mock.datamarts()["datamarts"]] == [
        "ff-3", "ff-4", "ff-x", "ff2-2"]


def test_fail_first_with_a_chosen_status(mock_factory):
    mock = mock_factory("--fail-first", "1", "--fail-first-status", "401")
    resp = mock.post(datamart_body("a"))
    assert resp.status == 401
    assert resp.json()["error"]["code"] == "AUTHENTICATION_ERROR"
    assert mock.post(datamart_body("a")).status == 200


def test_rate_limit_with_retry_after_seconds(mock):
    mock.set_faults(rate_limit=1, retry_after=7)
    resp = mock.post(datamart_body("limited"))
    assert resp.status == 429
    assert resp.reason == "Too Many Requests"
    assert resp.header("Retry-After") == "7"
    assert resp.json() == error("TOO_MANY_REQUESTS", "Too many requests", 429)
    assert mock.stats()["faults"]["rate_limit"] == 1


def test_rate_limit_with_retry_after_date(mock_factory):
    mock = mock_factory("--rate-limit", "1", "--retry-after", "30", "--retry-after-date")
    before = time.time()
    resp = mock.post(datamart_body("limited"))
    assert resp.status == 429
    value = resp.header("Retry-After")
    assert value.endswith(" GMT") and "," in value
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert before + 30 - 2 <= when <= time.time() + 30 + 1


def test_lost_answer_creates_then_closes(mock):
    mock.set_faults(lost_answer=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        mock.post(datamart_body("ambiguous"))
    mock.set_faults(lost_answer=0)
    # the retry finds the datamart made by the attempt whose answer was lost
    resp = mock.post(datamart_body("ambiguous"))
    assert resp.json() == error("INVALID_REQUEST_BODY", "Datamart name already exists")
    stats = mock.stats()
    assert stats["faults"]["lost_answer"] == 1
    assert stats["created"] == 1 and stats["duplicates"] == 1
    assert stats["by_status"] == {"400": 1}
    assert stats["concurrent_requests"] == 0


def test_reset_closes_without_creating(mock):
    mock.set_faults(reset=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        mock.post(datamart_body("never"))
    mock.set_faults(reset=0)
    assert mock.post(datamart_body("never")).status == 200
    stats = mock.stats()
    assert stats["faults"]["reset"] == 1 and stats["created"] == 1


def test_hang_holds_the_request_until_the_client_leaves(mock):
    mock.set_faults(hang=1)
    with pytest.raises(TimeoutError):
        mock.post(datamart_body("hung"), timeout=0.3)
    # the client above closed its socket after the timeout
    harness.wait_until(lambda: mock.stats()["hanging"] == 0, message="the hang to end")
    sockets = [raw_request(mock, datamart_body(f"hung-{i}")) for i in range(3)]
    stats = harness.wait_until(lambda: (s := mock.stats())["hanging"] == 3 and s,
                               message="three hanging requests")
    assert stats["concurrent_requests"] == 3
    assert stats["faults"]["hang"] == 4
    sockets[0].settimeout(0.2)
    with pytest.raises(TimeoutError):
        sockets[0].recv(1)
    for sock in sockets[:2]:
        sock.close()
    stats = harness.wait_until(lambda: (s := mock.stats())["hanging"] == 1 and s,
                               message="two clients to be noticed leaving")
    assert stats["concurrent_requests"] == 1
    assert stats["created"] == 0 and stats["by_status"] == {}
    assert stats["peak_concurrent_requests"] == 3
    mock.set_faults(hang=0)
    assert mock.post(datamart_body("after-hang")).status == 200
    # the last one is still held when the mock stops: it exits cleanly and closes it
    assert mock.stop() == 0
    sockets[2].settimeout(10)
    assert sockets[2].recv(1) == b""
    sockets[2].close()


def test_latency_delays_the_answer(mock_factory):
    mock = mock_factory("--latency-ms", "200")
    started = time.monotonic()
    resp = mock.post(datamart_body("slow"))
    assert resp.status == 200
    assert time.monotonic() - started >= 0.2
    mock.set_faults(latency_ms=0)
    started = time.monotonic()
    assert mock.post(datamart_body("fast")).status == 200
    assert time.monotonic() - started < 0.2


def test_latency_jitter_stays_in_its_range(mock_factory):
    mock = mock_factory("--latency-ms", "100:60", "--seed", "5")
    session = mock.session()
    elapsed = []
    for i in range(12):
        started = time.monotonic()
        assert mock.post(datamart_body(f"j-{i}"), session=session).status == 200
        elapsed.append(time.monotonic() - started)
    session.close()
    assert min(elapsed) >= 0.04
    assert max(elapsed) - min(elapsed) > 0.01  # the delays do vary
    assert mock.faults()["latency_jitter_ms"] == 60


def test_latency_applies_to_errors_and_lost_answers(mock_factory):
    mock = mock_factory("--latency-ms", "150", "--lost-answer", "1")
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        mock.post(datamart_body("late-loss"))
    assert time.monotonic() - started >= 0.15
    mock.set_faults(lost_answer=0, error_500=1)
    started = time.monotonic()
    assert mock.post(datamart_body("late-500")).status == 500
    assert time.monotonic() - started >= 0.15


def test_client_leaving_during_latency_is_cleaned_up(mock_factory):
    mock = mock_factory("--latency-ms", "300")
    sock = raw_request(mock, datamart_body("gone"))
    harness.wait_until(lambda: mock.stats()["concurrent_requests"] == 1,
                       message="the delayed request")
    sock.close()
    harness.wait_until(lambda: mock.stats()["concurrent_requests"] == 0,
                       message="the mock to notice the client left")
    time.sleep(0.4)  # past the timer that would have answered
    stats = mock.stats()
    assert stats["created"] == 1  # processed on arrival, as a real server would
    assert stats["by_status"] == {}
    assert mock.post(datamart_body("still-serving")).status == 200


def test_concurrent_and_peak_requests(mock_factory):
    mock = mock_factory("--latency-ms", "400")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        mock.post(datamart_body(f"par-{i}")).status)) for i in range(6)]
    for t in threads:
        t.start()
    during = harness.wait_until(lambda: (s := mock.stats())["concurrent_requests"] == 6 and s,
                                message="six requests in flight")
    assert during["peak_concurrent_requests"] == 6
    for t in threads:
        t.join()
    assert results == [200] * 6
    after = mock.stats()
    assert after["concurrent_requests"] == 0 and after["peak_concurrent_requests"] == 6
    assert after["connections_accepted"] >= 6


# --- admin endpoints ----------------------------------------------------------------------------

def test_datamarts_keep_exact_body_bytes_in_order(mock):
    bodies = [
        b'{ "name" : "spacey",\n\t"datasourceName":"postgres-main", "tableList":[{"name":"t",'
        b'"columns":[{"name":"c"}]}] , "extra": [1, 2.50, true, null] }\n',
        '{"name":"unicod\u00e9-\u6f22","datasourceName":"postgres-main","tableList":[{"name":"t",'
        '"columns":[{"name":"c","sql":"CASE WHEN a = \'x\' THEN 1 END"}]}]}'.encode(),
        b'{"tableList":[{"columns":[{"name":"c"}],"name":"t"}],"datasourceName":"postgres-main",'
        b'"name":"esc\\u00e9\\n\\"q\\""}',
    ]
    before = int(time.time() * 1000)
    for body in bodies:
        assert mock.post(body).status == 200
    after = int(time.time() * 1000)
    listed = mock.datamarts()
    assert [d["name"] for d in listed["datamarts"]] == [
        "spacey", "unicod\u00e9-\u6f22", 'esc\u00e9\n"q"']
    assert [d["body"].encode() for d in listed["datamarts"]] == bodies
    arrivals = [d["arrival_ms"] for d in listed["datamarts"]]
    assert before - 5 <= arrivals[0] <= arrivals[1] <= arrivals[2] <= after + 5
    assert listed["precreated"] == []


def test_precreate(mock):
    assert mock.precreate(["taken", "also-taken"]) == {"added": 2, "existing": 0}
    assert mock.precreate({"names": ["taken", "third"]}) == {"added": 1, "existing": 1}
    resp = mock.post(datamart_body("taken"))
    assert resp.json() == error("INVALID_REQUEST_BODY", "Datamart name already exists")
    listed = mock.datamarts()
    assert listed["datamarts"] == []
    assert listed["precreated"] == ["taken", "also-taken", "third"]
    bad = mock.request("POST", "/__precreate", ["ok", 7])
    assert bad.status == 400
    assert bad.json()["error"]["code"] == "INVALID_ADMIN_REQUEST"
    assert "ok" not in mock.datamarts()["precreated"]
    assert mock.stats()["requests"] == 1  # admin calls are not API traffic


def test_token_rotation(mock):
    old = mock.token
    assert mock.set_tokens(["rotated-1", "rotated-2"]) == {"tokens": 2}
    assert mock.post(datamart_body("a")).json() == AUTH_ERROR
    assert mock.post(datamart_body("a"), token="rotated-2").status == 200
    for bad in ([], ["ok", ""], ["has space"], [1], {"tokens": "x"}, "x"):
        resp = mock.request("PUT", "/__tokens", bad)
        assert resp.status == 400, bad
        assert old not in resp.body.decode() and "rotated" not in resp.body.decode()
    assert mock.post(datamart_body("b"), token="rotated-1").status == 200
    assert mock.set_tokens({"tokens": ["third"]}) == {"tokens": 1}
    assert mock.post(datamart_body("c"), token="rotated-1").status == 400
    mock.reset(tokens=True)
    assert mock.post(datamart_body("d"), token=old).status == 200


def test_reset_forgets_datamarts_and_stats_but_keeps_settings(mock):
    assert mock.post(datamart_body("kept?")).status == 200
    mock.set_faults(retry_after=9, rate_limit=0.25)
    mock.set_tokens(["new-token"])
    assert mock.reset() == {"reset": True}
    stats = mock.stats()
    assert stats["requests"] == 0 and stats["created"] == 0 and stats["by_status"] == {}
    assert stats["connections_accepted"] == 1  # this very call
    assert mock.datamarts() == {"datamarts": [], "precreated": []}
    faults = mock.faults()
    assert faults["retry_after"] == 9 and faults["rate_limit"] == 0.25
    assert mock.post(datamart_body("kept?"), token="new-token").status in (200, 429)
    mock.reset(faults=True, tokens=True)
    faults = mock.faults()
    assert faults["retry_after"] == 1 and faults["rate_limit"] == 0
    assert mock.post(datamart_body("kept?")).status == 200


def test_faults_endpoint(mock):
    knobs = mock.faults()
    assert set(knobs) == {"error_500", "error_502", "error_503", "error_504", "rate_limit",
                          "hang", "reset", "lost_answer", "latency_ms", "latency_jitter_ms",
                          "retry_after", "retry_after_date", "fail_first", "fail_first_status",
                          "auth_status", "seed"}
    assert knobs["seed"] == 1 and knobs["auth_status"] == 400
    # what GET answers, PUT takes
    assert mock.set_faults(**knobs) == knobs
    updated = mock.set_faults(latency_ms=5, latency_jitter_ms=2, retry_after_date=True,
                              auth_status=401)
    assert updated == {**knobs, "latency_ms": 5, "latency_jitter_ms": 2,
                       "retry_after_date": True, "auth_status": 401}
    for bad in ({"nope": 1}, {"error_500": 2}, {"error_500": 0.6, "hang": 0.6},
                {"latency_ms": -1}, {"latency_ms": 1.5}, {"retry_after_date": 1},
                {"fail_first_status": 302}, [1], "x"):
        resp = mock.request("PUT", "/__faults", bad)
        assert resp.status == 400, bad
        assert resp.json()["error"]["code"] == "INVALID_ADMIN_REQUEST"
    assert mock.request("PUT", "/__faults", b"{not json").status == 400
    assert mock.faults() == updated  # all or nothing


def test_admin_routing(mock):
    assert mock.request("GET", "/__nope").status == 404
    resp = mock.request("GET", "/__reset")
    assert resp.status == 405
    assert resp.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert mock.request("POST", "/__stats").status == 405
    assert mock.stats()["requests"] == 0


def test_store_limit(mock_factory):
    mock = mock_factory("--max-datamarts", "2")
    assert statuses(mock, 2, "cap") == [200, 200]
    resp = mock.post(datamart_body("cap-2"))
    assert resp.status == 500
    assert resp.json() == error("INTERNAL_SERVER_ERROR", "The mock's datamart store is full",
                                500)
    mock.reset()
    assert mock.post(datamart_body("cap-2")).status == 200


def test_fault_storm_leaves_the_mock_consistent(mock_factory):
    mock = mock_factory("--seed", "11", "--latency-ms", "5:5", "--hang", "0.1", "--reset", "0.1",
                        "--lost-answer", "0.1", "--error-503", "0.1", "--rate-limit", "0.1")
    outcomes = []

    def client(worker):
        session = mock.session()
        for i in range(40):
            try:
                # long enough that only hangs time out, even on a busy machine
                outcomes.append(mock.post(datamart_body(f"storm-{worker}-{i}"), session=session,
                                          timeout=0.6).status)
            except (TimeoutError, ConnectionError, http.client.HTTPException):
                outcomes.append("no answer")
        session.close()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = harness.wait_until(
        lambda: (s := mock.stats())["concurrent_requests"] == 0 and s["hanging"] == 0 and s,
        message="every request to be answered, closed or released")
    assert stats["requests"] == len(outcomes) == 480
    answered = [o for o in outcomes if o != "no answer"]
    assert sum(stats["by_status"].values()) == len(answered)
    faults = stats["faults"]
    assert outcomes.count("no answer") == faults["hang"] + faults["reset"] + faults["lost_answer"]
    assert stats["created"] == answered.count(200) + faults["lost_answer"]
    mock.set_faults(hang=0, reset=0, lost_answer=0, error_503=0, rate_limit=0)
    assert mock.post(datamart_body("after-storm"), timeout=5).status == 200
