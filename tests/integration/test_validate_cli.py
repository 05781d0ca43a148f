"""`datamartctl validate` on the real binary: output lines, exit codes, stdin, size bound, examples."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

BIN = (Path(os.environ.get("DATAMART_BIN_DIR", "build/bin")) / "datamartctl").resolve()
SOURCE = Path(os.environ.get("DATAMART_SOURCE_DIR", Path(__file__).resolve().parents[2]))
EXAMPLES = SOURCE / "conf" / "examples"

VALID = {
    "name": "acme-sales",
    "datasourceName": "acme-postgres",
    "tableList": [{"name": "orders", "schemaName": "public", "columns": [{"name": "id"}]}],
}


def run(*args, stdin=None, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], input=stdin, capture_output=True,
                          timeout=30, cwd=cwd)


def lines(proc):
    return proc.stdout.decode().splitlines()


@pytest.fixture
def payload(tmp_path):
    """write(obj_or_bytes, name) -> the path of a file holding it"""
    def write(content, name="payload.json"):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        return path
    return write


def test_valid_file(payload):
    path = payload(VALID)
    proc = run("validate", path)
    assert proc.returncode == 0
    assert lines(proc) == [f"{path}: ok"]
    assert proc.stderr == b""


def test_invalid_file_lists_every_problem_in_order(payload):
    body = dict(VALID, name=" ", tableList=[
        {"name": "orders", "columns": [{"name": "id"}, {"name": "id", "isCustomColumn": True}]},
        {"name": "orders", "columns": [{"name": "id"}]},
    ])
    body["relationships"] = [{"parentTableName": "a"}]
    path = payload(body)
    proc = run("validate", path)
    assert proc.returncode == 1
    out = lines(proc)
    paths = [line.split(": ")[1] for line in out]
    assert paths == [
        "name",
        "tableList[0].columns[1].name",
        "tableList[0].columns[1].sql",
        "tableList[1]",
        "relationships[0].parentColumnName",
        "relationships[0].childTableName",
        "relationships[0].childColumnName",
        "relationships[0].relationshipName",
    ]
    for line in out:
        assert re.fullmatch(re.escape(str(path)) + r": \S+: expected .+, found .+", line), line
    assert "found a blank string" in out[0]
    assert 'found "id" again (first at columns[0])' in out[1]


def test_not_json(payload):
    proc = run("validate", payload(b'{"name": "a",}'))
    assert proc.returncode == 1
    [line] = lines(proc)
    assert line.endswith(": $: payload is not valid JSON near byte 13: expected a string key")


def test_stdin():
    proc = run("validate", "-", stdin=json.dumps(VALID).encode())
    assert proc.returncode == 0
    assert lines(proc) == ["<stdin>: ok"]
    proc = run("validate", "-", stdin=b"")
    assert proc.returncode == 1
    assert lines(proc) == ["<stdin>: $: payload is empty, expected a JSON object"]
    proc = run("validate", "-", stdin=b"[]")
    assert proc.returncode == 1
    assert lines(proc) == ["<stdin>: $: expected a JSON object at the root, found an empty array"]


def test_several_files_worst_status_wins(payload, tmp_path):
    good = payload(VALID, "good.json")
    bad = payload({"name": "x"}, "bad.json")
    missing = tmp_path / "missing.json"
    proc = run("validate", good, bad)
    assert proc.returncode == 1
    out = lines(proc)
    assert out[0] == f"{good}: ok"
    assert all(line.startswith(f"{bad}: ") for line in out[1:]) and len(out) == 3

    proc = run("validate", good, missing, bad)
    assert proc.returncode == 2
    assert f"{missing}: No such file or directory" in proc.stderr.decode()
    # the other files are still checked
    assert lines(proc)[0] == f"{good}: ok"
    assert any(line.startswith(f"{bad}: ") for line in lines(proc))


def test_missing_file_and_directory(tmp_path):
    proc = run("validate", tmp_path / "nope.json")
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert "nope.json: No such file or directory" in proc.stderr.decode()
    proc = run("validate", tmp_path)
    assert proc.returncode == 2
    assert "Is a directory" in proc.stderr.decode()


def test_default_size_bound(payload):
    limit = 1024 * 1024
    padded = json.dumps(VALID).encode()
    at_limit = padded + b" " * (limit - len(padded))
    assert run("validate", payload(at_limit, "at.json")).returncode == 0
    proc = run("validate", payload(at_limit + b" ", "over.json"))
    assert proc.returncode == 1
    assert lines(proc)[0].endswith(": $: payload exceeds the limit of 1048576 bytes")
    # a huge stream is not read to the end
    proc = run("validate", "-", stdin=b" " * (8 * limit))
    assert proc.returncode == 1
    assert "exceeds the limit" in proc.stdout.decode()


def test_size_bound_from_config(payload, tmp_path):
    conf = tmp_path / "datamartd.conf"
    conf.write_text("[api]\nmax_payload_bytes = 2048\n")
    body = json.dumps(VALID).encode()
    path = payload(body + b" " * (2048 - len(body)), "at.json")
    assert run("-c", conf, "validate", path).returncode == 0
    path = payload(body + b" " * (2049 - len(body)), "over.json")
    proc = run("-c", conf, "validate", path)
    assert proc.returncode == 1
    assert lines(proc) == [f"{path}: $: payload exceeds the limit of 2048 bytes"]
    # without -c the default applies
    assert run("validate", path).returncode == 0


def test_bad_config_is_a_usage_error(payload, tmp_path):
    conf = tmp_path / "datamartd.conf"
    conf.write_text("[api]\nmax_payload_bytes = lots\n")
    proc = run("-c", conf, "validate", payload(VALID))
    assert proc.returncode == 2
    assert "max_payload_bytes" in proc.stderr.decode()
    assert proc.stdout == b""
    proc = run("-c", tmp_path / "absent.conf", "validate", payload(VALID))
    assert proc.returncode == 2


@pytest.mark.parametrize("args", [
    [], ["validate"], ["validate", "--bogus", "x.json"], ["frobnicate"], ["--bogus", "validate"],
    ["--redis", "localhost", "validate", "x.json"], ["--redis", "host:99999", "validate", "x"],
    ["--prefix", "", "validate", "x.json"], ["--prefix", "a b", "validate", "x.json"],
    ["-c"],
])
def test_usage_errors(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr != b""


def test_global_options_are_accepted(payload):
    path = payload(VALID)
    proc = run("--redis", "127.0.0.1:6390", "--prefix", "dm:test", "validate", path)
    assert proc.returncode == 0
    assert run("--redis", "[::1]:6379", "validate", path).returncode == 0


def test_double_dash_allows_names_starting_with_a_dash(payload, tmp_path):
    payload(VALID, "-odd.json")
    proc = run("validate", "--", "-odd.json", cwd=tmp_path)
    assert proc.returncode == 0
    assert lines(proc) == ["-odd.json: ok"]


def test_control_bytes_in_file_names_are_not_echoed(payload):
    path = payload(VALID, "a\nb\x1b.json")
    proc = run("validate", path)
    assert proc.returncode == 0
    assert lines(proc) == [f"{path.parent}/a?b?.json: ok"]


def test_help_and_version():
    proc = run("--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert text.startswith("Usage: datamartctl [-c FILE] [--redis HOST:PORT] [--prefix P] COMMAND")
    assert "validate FILE..." in text
    assert run("-h").stdout == proc.stdout
    project = (SOURCE / "CMakeLists.txt").read_text()
    version = re.search(r"project\(datamartd VERSION (\S+)", project).group(1)
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.decode() == f"datamartctl {version}\n"


def test_examples():
    valid = sorted(EXAMPLES.glob("*.json"))
    invalid = sorted((EXAMPLES / "invalid").glob("*.json"))
    assert len(valid) >= 3 and len(invalid) >= 3
    proc = run("validate", *valid)
    assert proc.returncode == 0, proc.stdout.decode()
    assert lines(proc) == [f"{path}: ok" for path in valid]
    for path in invalid:
        proc = run("validate", path)
        assert proc.returncode == 1, path
        assert lines(proc) and all(line.startswith(f"{path}: ") for line in lines(proc))
