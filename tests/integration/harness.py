"""Process helpers shared by the integration tests.

- free_port(): a free loopback TCP port.
- Program / start_listening(): run a binary, wait for its `listening on HOST:PORT` line on stdout.
- RedisServer: a private redis-server on a free loopback port, in a directory of its own.
- Mock: a running databrain-mock with a small HTTP client for its API and /__ admin endpoints.
- daemon_script(): a daemon Lua script as the build embeds it.

Only loopback addresses are ever used.
"""
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("DATAMART_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN_DIR = Path(os.environ.get("DATAMART_BIN_DIR", SOURCE_DIR / "build" / "bin"))
LOOPBACK = "127.0.0.1"

API_PATH = "/api/v2/data-app/datamarts"
LEGACY_API_PATH = "/api/v2/dataApp/datamarts"
LISTENING_RE = re.compile(r"^listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)$")


def daemon_script(name):
    """daemon/scripts/NAME.lua as the daemon embeds it (cmake/EmbedLua.cmake): a first line
    "-- prelude: x.lua" puts scripts/x.lua in front of it."""
    scripts = SOURCE_DIR / "daemon" / "scripts"
    text = (scripts / f"{name}.lua").read_text()
    prelude = re.match(r"-- prelude: ([A-Za-z0-9_]+\.lua)\n", text)
    if prelude:
        text = (scripts / prelude.group(1)).read_text() + text
    return text


def binary(name):
    """The path of a program built into DATAMART_BIN_DIR."""
    path = BIN_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is not built (DATAMART_BIN_DIR={BIN_DIR})")
    return path


def free_port(host=LOOPBACK):
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=5.0, interval=0.02, message="condition"):
    """Poll predicate() until it returns a truthy value; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Program:
    """A started program. stderr goes to a file (stderr_text() reads it); stop() sends SIGTERM
    and returns the exit code, killing the program if it does not exit in time. stderr_path
    picks that file (truncated, an existing one keeps its inode); default: one in log_dir."""

    def __init__(self, args, log_dir, name=None, env=None, stdout=subprocess.DEVNULL,
                 stderr_path=None):
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.stderr_path = Path(stderr_path or
                                Path(log_dir) / f"{self.name}-{os.getpid()}-{id(self)}.stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=self._stderr, env=env)

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def running(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal the program and wait for it: its exit code (-9 if it had to be killed)."""
        if self.running():
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return code


def start_listening(args, log_dir, name=None, env=None, timeout=10):
    """Start a program that prints `listening on HOST:PORT` first; (program, host, port).
    Raises RuntimeError with its stderr if it exits or stays silent."""
    program = Program(args, log_dir, name=name, env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready = select.select([program.proc.stdout], [], [], max(remaining, 0))[0]
        chunk = os.read(program.proc.stdout.fileno(), 1) if ready else b""
        if not chunk:
            program.stop()
            raise RuntimeError(f"{program.name} did not announce its address "
                               f"(exit {program.proc.returncode}): {program.stderr_text()}")
        line += chunk
    match = LISTENING_RE.match(line.decode().strip())
    if match is None:
        program.stop()
        raise RuntimeError(f"{program.name}: unexpected first line {line!r}")
    return program, match.group(1).strip("[]"), int(match.group(2))


class RedisServer:
    """A private redis-server on 127.0.0.1 and a free port, persisting into its own directory
    (append-only file when appendonly=True, which survives restart())."""

    def __init__(self, data_dir, appendonly=False, port=None):
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.host = LOOPBACK
        self.port = port or free_port()
        self.program = None

    def start(self, timeout=10):
        args = ["redis-server", "--port", self.port, "--bind", self.host, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", self.dir,
                "--protected-mode", "yes", "--daemonize", "no"]
        self.program = Program(args, self.dir, name=f"redis-{self.port}")
        wait_until(self._ping, timeout=timeout, message=f"redis-server on port {self.port}")
        return self

    def _ping(self):
        if not self.program.running():
            raise RuntimeError(f"redis-server exited: {self.program.stderr_text()}")
        try:
            return self.client().ping()
        except Exception:  # not accepting connections yet
            return False

    def client(self, **kwargs):
        import redis  # only the tests that use Redis need python3-redis
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5,
                           decode_responses=kwargs.pop("decode_responses", True), **kwargs)

    def stop(self):
        return self.program.stop() if self.program is not None else 0

    def restart(self):
        self.stop()
        return self.start()

    @property
    def address(self):
        return f"{self.host}:{self.port}"


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


def _encode(body):
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class HttpSession:
    """One keep-alive HTTP/1.1 connection to host:port; reconnects after the server closed it."""

    def __init__(self, host, port, timeout=10):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port,
                                                   timeout=timeout or self.timeout)
        elif timeout is not None:
            self.conn.timeout = timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
        try:
            self.conn.request(method, path, body=_encode(body), headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        result = Response(resp.status, resp.reason,
                          {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self.close()
        return result

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def datamart_body(name, datasource="postgres-main", tables=None, **extra):
    """A valid Create Datamart body (a dict)."""
    body = {
        "name": name,
        "datasourceName": datasource,
        "tableList": tables if tables is not None else [
            {"name": "orders", "schemaName": "public",
             "columns": [{"name": "id"}, {"name": "amount", "alias": "Amount"}]}],
    }
    body.update(extra)
    return body


class Mock:
    """A running databrain-mock. The API helpers return Response objects; the admin helpers
    return decoded JSON and assert the admin call succeeded."""

    def __init__(self, log_dir, *args, token="mock-test-token", name="databrain-mock"):
        self.token = token
        argv = [binary("databrain-mock"), "--listen", f"{LOOPBACK}:0"]
        if token is not None:
            argv += ["--token", token]
        self.program, self.host, self.port = start_listening([*argv, *args], log_dir, name=name)

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def session(self, timeout=10):
        return HttpSession(self.host, self.port, timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        session = self.session(timeout)
        try:
            return session.request(method, path, body, headers)
        finally:
            session.close()

    def auth_headers(self, token=None):
        token = self.token if token is None else token
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, body, token=None, path=API_PATH, timeout=10, session=None):
        """POST a Create Datamart body (dict, str or bytes) with the mock's token."""
        headers = self.auth_headers(token)
        if session is not None:
            return session.request("POST", path, body, headers, timeout=timeout)
        return self.request("POST", path, body, headers, timeout=timeout)

    def admin(self, method, path, body=None):
        resp = self.request(method, path, body)
        assert resp.status == 200, resp
        return resp.json()

    def stats(self):
        return self.admin("GET", "/__stats")

    def datamarts(self):
        return self.admin("GET", "/__datamarts")

    def faults(self):
        return self.admin("GET", "/__faults")

    def set_faults(self, **knobs):
        return self.admin("PUT", "/__faults", knobs)

    def set_tokens(self, tokens):
        return self.admin("PUT", "/__tokens", tokens)

    def precreate(self, names):
        return self.admin("POST", "/__precreate", names)

    def reset(self, faults=False, tokens=False):
        body = {"faults": faults, "tokens": tokens} if faults or tokens else None
        return self.admin("POST", "/__reset", body)

    def stderr_text(self):
        return self.program.stderr_text()

    def stop(self, sig=signal.SIGTERM):
        return self.program.stop(sig)
