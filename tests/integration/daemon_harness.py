"""datamartd-specific helpers for the integration tests (the generic ones live in harness.py).

- DaemonConfig: a config file for one test (loopback Redis, the mock, a free admin port).
- Daemon: a running datamartd with its token in DATAMARTD_API_TOKEN; admin HTTP helpers; logs.
- Results: the outcomes the daemon published to P:results, read incrementally.
- NotifyListener: a unix datagram socket standing in for systemd's NOTIFY_SOCKET.
- enqueue(): XADD many jobs in one pipelined round trip.

Only loopback addresses are ever used.
"""
import os
import re
import select
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import redis

import harness

TOKEN = "dmtest-pipeline-8c41f0-secret-token"
PREFIX = "dmtest"
GROUP = "dmtest-group"
CONSUMER = "pipeline-test-1"

# every key a test may want to change; None means "filled in by DaemonConfig"
DEFAULT_SETTINGS = {
    "redis": {"host": harness.LOOPBACK, "port": None, "prefix": PREFIX},
    "api": {"base_url": None, "connect_timeout_ms": 2000, "request_timeout_ms": 15000,
            "max_inflight": 64},
    "queue": {"group": GROUP, "consumer": CONSUMER, "max_attempts": 3, "backoff_base_ms": 50,
              "backoff_max_ms": 200, "result_ttl_s": 3600, "reply_ttl_s": 600,
              "shutdown_grace_ms": 5000},
    "rate_limit": {"rate": 0},
    "breaker": {"enabled": "no"},
    "admin": {"listen": None},
    "log": {"level": "info"},
}


class DaemonConfig:
    """A datamartd config file. settings override DEFAULT_SETTINGS per section; a value of None
    leaves the key out (it takes its default)."""

    def __init__(self, path, redis_port, base_url, **settings):
        self.path = Path(path)
        self.admin_port = harness.free_port()
        self.settings = {section: dict(keys) for section, keys in DEFAULT_SETTINGS.items()}
        self.settings["redis"]["port"] = redis_port
        self.settings["api"]["base_url"] = base_url
        self.settings["admin"]["listen"] = f"{harness.LOOPBACK}:{self.admin_port}"
        self.update(**settings)

    def update(self, **settings):
        """update(queue={"shutdown_grace_ms": 200}) and rewrite the file."""
        for section, keys in settings.items():
            self.settings.setdefault(section, {}).update(keys)
        self.write()
        return self

    def write(self):
        lines = []
        for section, keys in self.settings.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {v}" for k, v in keys.items() if v is not None]
            lines.append("")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines))
        os.replace(tmp, self.path)  # a reload never reads half a file

    @property
    def prefix(self):
        return self.settings["redis"]["prefix"]


class Daemon:
    """A running datamartd. stop() returns its exit code; logs() is its stdout and stderr.
    journal=True makes its stderr file look like systemd's journal stream: JOURNAL_STREAM names
    that file's device and inode."""

    def __init__(self, log_dir, config, token=TOKEN, notify_socket=None, extra_env=None,
                 journal=False):
        self.config = config
        self.token = token
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATAMARTD_API_TOKEN", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
                            "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        if token is not None:
            env["DATAMARTD_API_TOKEN"] = token
        if notify_socket is not None:
            env["NOTIFY_SOCKET"] = str(notify_socket)
        env.update(extra_env or {})
        self.stdout_path = Path(log_dir) / f"datamartd-{id(self)}.stdout"
        stderr_path = None
        if journal:
            stderr_path = Path(log_dir) / f"datamartd-{id(self)}.journal"
            stderr_path.touch()
            st = os.stat(stderr_path)
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        with open(self.stdout_path, "wb") as out:
            self.program = harness.Program([harness.binary("datamartd"), "-c", config.path],
                                           log_dir, name=f"datamartd-{id(self)}", env=env,
                                           stdout=out, stderr_path=stderr_path)
        self.returncode = None

    def running(self):
        return self.program.running()

    def send_signal(self, sig):
        self.program.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.returncode is None:
            self.returncode = self.program.stop(sig, timeout=timeout)
        return self.returncode

    def wait(self, timeout):
        """Wait for an exit that was already asked for; its code."""
        self.returncode = self.program.proc.wait(timeout=timeout)
        self.program.stop()  # closes the log file
        return self.returncode

    def logs(self):
        return self.stdout_path.read_text(errors="replace") + self.program.stderr_text()

    def get(self, path, timeout=5):
        """(status, body text) of an admin GET."""
        session = harness.HttpSession(harness.LOOPBACK, self.config.admin_port, timeout)
        try:
            resp = session.request("GET", path)
        finally:
            session.close()
        return resp.status, resp.body.decode(errors="replace")

    def try_get(self, path):
        """Like get(), but None while the listener is not up yet."""
        try:
            return self.get(path, timeout=2)
        except OSError:
            return None

    def wait_ready(self, timeout=10):
        def ready():
            if not self.running():
                raise AssertionError(f"datamartd exited {self.program.proc.returncode}:\n"
                                     f"{self.logs()[-4000:]}")
            answer = self.try_get("/readyz")
            return answer is not None and answer[0] == 200
        harness.wait_until(ready, timeout=timeout, interval=0.05, message="datamartd /readyz 200")
        return self

    def metrics(self):
        """/metrics as {'name{labels}': value}."""
        status, text = self.get("/metrics")
        assert status == 200, text
        return parse_metrics(text)

    def assert_token_never_logged(self, *secrets):
        text = self.logs()
        for secret in (self.token, *secrets):
            if secret:
                assert secret not in text, "a token appears in datamartd's output"


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        assert match is not None, f"not a Prometheus sample line: {line!r}"
        samples[match.group(1)] = float(match.group(2))
    return samples


def decode(value):
    """Redis bytes to str; bytes that are not UTF-8 survive as surrogates."""
    return value.decode("utf-8", errors="surrogateescape")


class Results:
    """The entries of P:results, read incrementally (bytes client, so binary tenants survive)."""

    def __init__(self, raw_client, prefix=PREFIX):
        self.client = raw_client
        self.key = f"{prefix}:results"
        self.last_id = b"0-0"
        self.entries = []

    def poll(self):
        while True:
            answer = self.client.xread({self.key: self.last_id}, count=5000)
            if not answer:
                return self.entries
            for entry_id, fields in answer[0][1]:
                self.last_id = entry_id
                self.entries.append({decode(k): decode(v) for k, v in fields.items()})

    def jobs(self):
        return [e for e in self.poll() if e.get("event") == "job"]

    def batches(self):
        return [e for e in self.poll() if e.get("event") == "batch"]

    def wait(self, count, timeout=20, event="job", daemon=None):
        """At least count entries of event (all so far, in order), or AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.poll() if e.get("event") == event]
            if len(found) >= count:
                return found
            if daemon is not None and not daemon.running():
                raise AssertionError(f"datamartd exited {daemon.program.proc.returncode} with "
                                     f"{len(found)}/{count} outcomes:\n{daemon.logs()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)}/{count} {event} outcomes after {timeout}s")
            time.sleep(0.02)

    def by_job_id(self):
        """{job_id: [outcomes]} of the job events so far."""
        out = {}
        for e in self.jobs():
            out.setdefault(e["job_id"], []).append(e)
        return out


def enqueue(client, jobs, prefix=PREFIX):
    """XADD each job (a dict, or a list of (field, value) pairs that may repeat a field) in one
    pipelined round trip; the entry ids, as str."""
    key = f"{prefix}:jobs"
    pipe = client.pipeline(transaction=False)
    for job in jobs:
        pairs = job.items() if isinstance(job, dict) else job
        args = [a for pair in pairs for a in pair]
        pipe.execute_command("XADD", key, "*", *args)
    return [i.decode() if isinstance(i, bytes) else i for i in pipe.execute()]


def pending_count(client, prefix=PREFIX, group=GROUP):
    """Entries of P:jobs delivered to the group and not acked."""
    try:
        return client.xpending(f"{prefix}:jobs", group)["pending"]
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):  # no group yet: nothing was delivered
            return 0
        raise


class NotifyListener:
    """A unix datagram socket at a short path (sun_path holds 107 bytes), collecting the
    sd_notify messages sent to it; each message is a {KEY: value} dict."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dmn-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def poll(self, timeout=0.0):
        """Collect what arrived, waiting up to timeout for the first datagram."""
        deadline = time.monotonic() + timeout
        while select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))[0]:
            msg = {}
            for line in self.sock.recv(65536).decode(errors="replace").split("\n"):
                if "=" in line:
                    key, value = line.split("=", 1)
                    msg[key] = value
            self.messages.append(msg)
            deadline = 0  # after the first one, take only what is already there
        return self.messages

    def wait_for(self, predicate, start=0, timeout=10, message="a notify message"):
        """The index of the first message from index start on that satisfies predicate."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.messages)):
                if predicate(self.messages[i]):
                    return i
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {message}; got {self.messages}")
            self.poll(min(remaining, 0.2))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_aof_redis(server):
    """Start (or restart, same dir and port) a RedisServer made with appendonly=True, fsyncing its
    append-only file at every write so a SIGKILL loses nothing it acknowledged."""
    server.start()
    server.client().config_set("appendfsync", "always")
    return server


def redis_kill(server):
    """SIGKILL the server, as a crash would."""
    code = server.program.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL, code
