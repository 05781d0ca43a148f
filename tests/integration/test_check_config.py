"""datamartd's command line: --version, --help, usage errors and --check-config, on the real binary."""
import os
import re
import subprocess
from pathlib import Path

import pytest

BIN = Path(os.environ.get("DATAMART_BIN_DIR", "build/bin")) / "datamartd"
SOURCE = Path(os.environ.get("DATAMART_SOURCE_DIR", Path(__file__).resolve().parents[2]))
TOKEN = "dbn-test-7f3a9c-SECRET-token-value"


def run(*args, env_token=None, extra_env=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATAMARTD_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    if env_token is not None:
        env["DATAMARTD_API_TOKEN"] = env_token
    env.update(extra_env or {})
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def assert_no_secret(proc, secret=TOKEN):
    assert secret not in proc.stdout
    assert secret not in proc.stderr


@pytest.fixture
def conf(tmp_path):
    """write(text) -> the path of a config file holding text"""
    def write(text, name="datamartd.conf"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    project = (SOURCE / "CMakeLists.txt").read_text()
    version = re.search(r"project\(datamartd VERSION (\S+)", project).group(1)
    assert proc.stdout == f"datamartd {version}\n"
    assert run("-V").stdout == proc.stdout


def test_help():
    proc = run("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: datamartd")
    for option in ("-c, --config FILE", "--check-config", "--version", "--help",
                   "/etc/datamartd/datamartd.conf", "DATAMARTD_API_TOKEN"):
        assert option in proc.stdout
    assert proc.stderr == ""
    assert run("-h").stdout == proc.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["extra-argument"], ["-c"],
                                  ["--check-config", "-c", "a.conf", "b.conf"]])
def test_usage_errors(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Usage: datamartd" in proc.stderr


@pytest.mark.parametrize("name", ["conf/datamartd.conf", "tests/data/datamartd-test.conf"])
def test_shipped_configs_are_valid(name):
    path = SOURCE / name
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{path}: ok (")
    assert proc.stdout.count("\n") == 1
    assert "token=environment" in proc.stdout
    assert proc.stderr == ""
    assert_no_secret(proc)


def test_reference_config_documents_every_key():
    """every key the daemon knows appears in the reference config, as a key or an example"""
    text = (SOURCE / "conf/datamartd.conf").read_text()
    contract = (Path(SOURCE).parent / "shared/CONTRACT.md")
    keys = {"host", "port", "socket", "username", "password_file", "db", "prefix", "base_url",
            "token_file", "connect_timeout_ms", "request_timeout_ms", "max_inflight",
            "max_payload_bytes", "allow_insecure_http", "group", "consumer", "claim_idle_ms",
            "max_attempts", "max_age_s", "backoff_base_ms", "backoff_max_ms", "result_ttl_s",
            "results_maxlen", "reply_ttl_s", "shutdown_grace_ms", "rate", "burst", "scope",
            "enabled", "consecutive", "failure_ratio", "window", "probe_interval_ms",
            "probe_max_ms", "listen", "level"}
    if contract.exists():
        block = contract.read_text().split("## Config file (INI)")[1].split("```")[1]
        keys |= set(re.findall(r"^([a-z_]+)\s*=", block, re.M))
    for key in keys:
        assert re.search(rf"^#? ?{key} =", text, re.M), key


def test_token_from_file(conf, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    path = conf(f"[api]\ntoken_file = {token_file}\n")
    proc = run("--check-config", "-c", str(path), env_token="ignored-when-token_file-is-set")
    assert proc.returncode == 0, proc.stderr
    assert "token=token_file" in proc.stdout
    assert_no_secret(proc)


def test_token_from_credentials_directory(conf, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "databrain-token").write_text(TOKEN)
    path = conf("[api]\ntoken_file = credential:databrain-token\n")
    proc = run("--check-config", "-c", str(path),
               extra_env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc)
    proc = run("--check-config", "-c", str(path))
    assert proc.returncode == 1
    assert "credential:databrain-token needs $CREDENTIALS_DIRECTORY" in proc.stderr


def test_invalid_config_names_file_line_and_key(conf):
    path = conf("[redis]\nport = 70000\n\n[api]\nmax_inflight = 12x\nbogus = 1\n"
                "base_url = http://example.com\n[nope]\n[queue]\n"
                "backoff_base_ms = 9000\nbackoff_max_ms = 10\n")
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines == [
        f"{path}:2: [redis] port: 70000 is out of range: must be 1..65535",
        f"{path}:5: [api] max_inflight: '12x' is not a whole number",
        f"{path}:6: [api] bogus: unknown key",
        f"{path}:8: [nope]: unknown section",
        f"{path}:7: [api] base_url: plain http:// to the non-loopback host 'example.com' sends "
        "the token in clear; use https:// (or set [api] allow_insecure_http = yes, never in "
        "production)",
        f"{path}: [queue] backoff_base_ms: 9000 must not exceed [queue] backoff_max_ms (10)",
    ]


def test_missing_token(conf):
    path = conf("[api]\nmax_inflight = 4\n")
    proc = run("--check-config", "-c", str(path))
    assert proc.returncode == 1
    assert proc.stderr == (f"{path}: [api] token_file: no API token: set token_file or the "
                           "environment variable DATAMARTD_API_TOKEN\n")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.conf"
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 1
    assert proc.stderr == f"{path}: cannot open: No such file or directory\n"


def test_default_config_path():
    if Path("/etc/datamartd/datamartd.conf").exists():
        pytest.skip("a real /etc/datamartd/datamartd.conf exists here")
    proc = run("--check-config", env_token=TOKEN)
    assert proc.returncode == 1
    assert proc.stderr.startswith("/etc/datamartd/datamartd.conf: cannot open")


def test_run_mode_refuses_invalid_config(conf):
    """without --check-config an invalid file stops the daemon before it starts anything"""
    path = conf("[api]\nmax_inflight = 0\n")
    proc = run("-c", str(path), env_token=TOKEN)
    assert proc.returncode == 1
    assert f"{path}:2: [api] max_inflight" in proc.stderr


def test_token_never_printed(conf, tmp_path):
    """the token stays out of every output even when the file around it is wrong"""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    # the token pasted as a line, as a value of an unknown key, with '=' padding, as a path
    path = conf(f"[api]\ntoken_file = {token_file}\n{TOKEN}\ntoken = {TOKEN}\n{TOKEN}== = x\n"
                f"max_inflight = 0\n[redis]\npassword_file = {TOKEN}\n")
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 5
    assert_no_secret(proc)
    assert "dbn-test" not in proc.stderr

    # a token file with a bad token: named, never shown
    bad = TOKEN[:10] + " " + TOKEN[10:]
    token_file.write_text(bad)
    path = conf(f"[api]\ntoken_file = {token_file}\nmax_inflight = 0\n")
    proc = run("--check-config", "-c", str(path))
    assert proc.returncode == 1
    assert (f"{path}:2: [api] token_file: {token_file}: contains whitespace, control or "
            "non-ASCII characters") in proc.stderr
    assert_no_secret(proc, TOKEN[:10])
    assert_no_secret(proc, TOKEN[10:])

    # a bad token in the environment
    proc = run("--check-config", "-c", str(conf("[api]\n")), env_token=bad)
    assert proc.returncode == 1
    assert "environment variable DATAMARTD_API_TOKEN: contains whitespace" in proc.stderr
    assert_no_secret(proc, TOKEN[:10])
    assert_no_secret(proc, TOKEN[10:])


def test_redis_password_never_printed(conf, tmp_path):
    password = "redis-PASSWORD-91c2"
    pw = tmp_path / "redis-password"
    pw.write_text(password + "\n")
    path = conf(f"[redis]\npassword_file = {pw}\nusername = dm\n")
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc, password)
    pw.write_text(password + " trailing-words\n")
    proc = run("--check-config", "-c", str(path), env_token=TOKEN)
    assert proc.returncode == 1
    assert f"{path}:2: [redis] password_file: {pw}: contains whitespace" in proc.stderr
    assert_no_secret(proc, password)
