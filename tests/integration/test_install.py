"""`cmake --install`: the layout, the systemd units (verify, security score, directives) and the man
pages (render without warnings, match the programs and the contract)."""
import os
import re
import subprocess
from pathlib import Path

import pytest

BIN_DIR = Path(os.environ.get("DATAMART_BIN_DIR", "build/bin")).resolve()
BUILD_DIR = BIN_DIR.parent
SOURCE = Path(os.environ.get("DATAMART_SOURCE_DIR", Path(__file__).resolve().parents[2]))
UNITS = ("datamartd.service", "datamartd@.service")
PAGES = ("man1/datamartctl.1", "man5/datamartd.conf.5", "man8/datamartd.8")
MAX_EXPOSURE = 2.0
# lines where the template may differ from the plain unit; everything else must stay identical
INSTANCE_KEYS = ("Description", "ExecStart", "LoadCredential")


def run(*args, env=None, cwd=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def install(prefix, destdir=None):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    proc = run("cmake", "--install", BUILD_DIR, "--prefix", prefix, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def unit_lines(path):
    """[(comment lines before it, 'Key=value')] of every directive, in order"""
    directives, comments = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line.strip() == "" or line.startswith("["):
            comments = []
        else:
            directives.append((comments, line))
            comments = []
    return directives


def directive_values(path, key):
    return [line.split("=", 1)[1] for _, line in unit_lines(path) if line.startswith(key + "=")]


def seconds(value):
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def exposure(unit):
    proc = run("systemd-analyze", "security", "--offline=true", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


def render_warnings(page):
    """groff's complaints about a man page (empty when it is clean)"""
    proc = run("groff", "-man", "-Tutf8", "-ww", "-z", page)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def page_text(page):
    """the man page as plain text, hyphenation and justification off"""
    env = dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0")
    proc = run("man", "--nh", "--nj", "-l", page, env=env)
    assert proc.returncode == 0, proc.stderr
    return re.sub(r".\x08", "", proc.stdout)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    assert (BUILD_DIR / "CMakeCache.txt").is_file(), f"{BUILD_DIR} is not a build directory"
    root = tmp_path_factory.mktemp("prefix")
    install(root)
    return root


@pytest.fixture(scope="module")
def unit_dir(prefix):
    return prefix / "lib/systemd/system"


# ==== layout ====

def test_install_lays_out_programs_units_pages_and_docs(prefix):
    for program in ("sbin/datamartd", "bin/datamartctl", "bin/databrain-mock"):
        assert os.access(prefix / program, os.X_OK), program
    for unit in UNITS:
        assert (prefix / "lib/systemd/system" / unit).is_file()
    for page in PAGES:
        assert (prefix / "share/man" / page).read_text() == (
            SOURCE / "docs/man" / Path(page).name).read_text()
    doc = prefix / "share/doc/datamartd"
    assert (doc / "datamartd.conf").read_text() == (SOURCE / "conf/datamartd.conf").read_text()
    for name in ("README.md", "contract.md", "operations.md", "producer-guide.md",
                 "examples/tenant-acme.json"):
        assert (doc / name).is_file(), name
    # the install leaves /etc alone: no config to overwrite an operator's
    assert not (prefix / "etc").exists()
    proc = run(prefix / "sbin/datamartd", "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("datamartd ")


def test_installed_units_start_the_installed_daemon(prefix, unit_dir):
    assert directive_values(unit_dir / "datamartd.service", "ExecStart") == [
        f"{prefix}/sbin/datamartd -c /etc/datamartd/datamartd.conf"]
    assert directive_values(unit_dir / "datamartd@.service", "ExecStart") == [
        f"{prefix}/sbin/datamartd -c /etc/datamartd/%i.conf"]
    # nothing but ExecStart= changes on the way
    for unit in UNITS:
        source = [d for d in unit_lines(SOURCE / "contrib/systemd" / unit)
                  if not d[1].startswith("ExecStart=")]
        installed = [d for d in unit_lines(unit_dir / unit) if not d[1].startswith("ExecStart=")]
        assert installed == source


def test_staged_install_under_usr_ships_the_units_unchanged(tmp_path):
    install("/usr", destdir=tmp_path)
    for unit in UNITS:
        staged = tmp_path / "usr/lib/systemd/system" / unit
        assert staged.read_text() == (SOURCE / "contrib/systemd" / unit).read_text()
    assert os.access(tmp_path / "usr/sbin/datamartd", os.X_OK)
    assert (tmp_path / "usr/share/man/man8/datamartd.8").is_file()
    assert not (tmp_path / "etc").exists()


# ==== systemd units ====

@pytest.mark.parametrize("unit", ["datamartd.service", "datamartd@.service",
                                  "datamartd@blue.service"])
def test_systemd_analyze_verify_is_clean(unit_dir, prefix, unit):
    # Documentation=man:... is checked with man(1): the installed pages must be found
    env = dict(os.environ, MANPATH=str(prefix / "share/man"))
    proc = run("systemd-analyze", "verify", f"./{unit}", env=env, cwd=unit_dir)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(unit_dir, prefix, tmp_path):
    """the check above can fail: a typo and a missing binary are reported"""
    text = (unit_dir / "datamartd.service").read_text()
    broken = text.replace("Type=notify", "Type=notify\nWatchdogSecs=30s").replace(
        f"{prefix}/sbin/datamartd", f"{tmp_path}/missing/datamartd")
    (tmp_path / "datamartd.service").write_text(broken)
    env = dict(os.environ, MANPATH=str(prefix / "share/man"))
    proc = run("systemd-analyze", "verify", "./datamartd.service", env=env, cwd=tmp_path)
    assert proc.returncode != 0
    assert "WatchdogSecs" in proc.stderr and "missing/datamartd" in proc.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_at_most_2(unit_dir, unit):
    assert exposure(SOURCE / "contrib/systemd" / unit) <= MAX_EXPOSURE
    assert exposure(unit_dir / unit) <= MAX_EXPOSURE


def test_security_score_reflects_hardening(tmp_path):
    """the score parsed above moves: without the sandbox the unit rates far above 2.0"""
    weak = tmp_path / "datamartd.service"
    weak.write_text("".join(
        line for line in (SOURCE / "contrib/systemd/datamartd.service").open()
        if not line.startswith(("DynamicUser", "Protect", "Private", "SystemCall", "Restrict",
                                "CapabilityBoundingSet"))))
    assert exposure(weak) > 5.0


@pytest.mark.parametrize("unit", UNITS)
def test_every_directive_has_a_comment(unit):
    for comments, line in unit_lines(SOURCE / "contrib/systemd" / unit):
        assert comments, f"{unit}: {line} has no comment"


@pytest.mark.parametrize("unit", UNITS)
def test_lifecycle_and_sandbox_directives(unit):
    path = SOURCE / "contrib/systemd" / unit

    def one(key):
        values = directive_values(path, key)
        assert len(values) == 1, f"{key}: {values}"
        return values[0]

    assert one("Type") == "notify"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("Restart") == "on-failure"
    assert seconds(one("WatchdogSec")) > 0
    grace_ms = int(re.search(r"^shutdown_grace_ms = (\d+)$",
                             (SOURCE / "conf/datamartd.conf").read_text(), re.M).group(1))
    assert seconds(one("TimeoutStopSec")) * 1000 > grace_ms
    assert one("DynamicUser") == "yes"
    assert one("ConfigurationDirectory") == "datamartd"
    assert one("RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    assert directive_values(path, "PrivateNetwork") == []
    credentials = [v.split(":", 1)[0] for v in directive_values(path, "LoadCredential")]
    assert credentials == ["databrain-token", "redis-password"]


def test_template_differs_only_in_its_instance_lines():
    """the two units share their hardening line for line, so they cannot drift apart"""
    def shared(unit):
        return [line for _, line in unit_lines(SOURCE / "contrib/systemd" / unit)
                if not line.startswith(tuple(k + "=" for k in INSTANCE_KEYS))]

    assert shared("datamartd.service") == shared("datamartd@.service")
    template = SOURCE / "contrib/systemd/datamartd@.service"
    assert directive_values(template, "LoadCredential") == [
        "databrain-token:/etc/datamartd/credentials/%i/databrain-token",
        "redis-password:/etc/datamartd/credentials/%i/redis-password"]
    assert "consumer" in template.read_text()


def test_credentials_the_units_load_are_the_ones_the_sample_config_names(prefix, unit_dir,
                                                                         tmp_path):
    """the sample's own credential: lines, with the unit's credential directory, pass the check"""
    creds = tmp_path / "credentials"
    creds.mkdir()
    secrets = {"databrain-token": "dbn-install-test-SECRET", "redis-password": "r3dis-SECRET"}
    for value in directive_values(unit_dir / "datamartd.service", "LoadCredential"):
        name = value.split(":", 1)[0]
        (creds / name).write_text(secrets[name] + "\n")
    sample = (prefix / "share/doc/datamartd/datamartd.conf").read_text()
    config, count = re.subn(r"^# ((?:token|password)_file = credential:\S+)$", r"\1", sample,
                            flags=re.M)
    assert count == 2
    conf = tmp_path / "datamartd.conf"
    conf.write_text(config)
    env = {k: v for k, v in os.environ.items() if k != "DATAMARTD_API_TOKEN"}
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    proc = run(prefix / "sbin/datamartd", "--check-config", "-c", conf, env=env)
    assert proc.returncode == 0, proc.stderr
    for secret in secrets.values():
        assert secret not in proc.stdout + proc.stderr
    (creds / "databrain-token").unlink()
    proc = run(prefix / "sbin/datamartd", "--check-config", "-c", conf, env=env)
    assert proc.returncode == 1 and "token_file" in proc.stderr


# ==== man pages ====

@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(prefix, page):
    assert render_warnings(prefix / "share/man" / page) == ""
    text = page_text(prefix / "share/man" / page)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), section


def test_groff_warnings_are_noticed(tmp_path):
    """the check above can fail: an unknown macro is a warning"""
    page = tmp_path / "bad.1"
    page.write_text(".TH BAD 1\n.SH NAME\nbad \\- bad\n.XYZZY\n")
    assert render_warnings(page) != ""


def test_datamartctl_page_lists_every_command_and_exit_code(prefix):
    text = page_text(prefix / "share/man/man1/datamartctl.1")
    commands = text.split("\nCOMMANDS\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    for command in ("enqueue", "validate", "status", "wait", "watch", "stats", "dead list",
                    "dead requeue", "dead purge", "batch status", "pause", "resume"):
        assert re.search(rf"^ +{command}\b", commands, re.M), command
    codes = text.split("\nEXIT STATUS\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
    codes = " ".join(codes.split())
    for pattern in (r"\b0 Success", r"\b1 Not found .* invalid .* failed", r"\b2 Usage error",
                    r"\b2 Usage error[^.]*; for wait, the timeout passed",
                    r"\b3 Redis is unreachable"):
        assert re.search(pattern, codes), pattern


@pytest.mark.parametrize("program,page", [("sbin/datamartd", "man8/datamartd.8"),
                                          ("bin/datamartctl", "man1/datamartctl.1")])
def test_man_page_documents_every_option_of_the_program(prefix, program, page):
    helptext = run(prefix / program, "--help").stdout
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helptext))
    assert "--help" in options
    text = page_text(prefix / "share/man" / page)
    missing = sorted(o for o in options if not re.search(rf"(?<![\w-]){o}\b", text))
    assert missing == [], f"{page} lacks {missing}"


def test_datamartd_conf_page_documents_every_key_of_the_reference_config(prefix):
    text = page_text(prefix / "share/man/man5/datamartd.conf.5")
    reference = (SOURCE / "conf/datamartd.conf").read_text()
    section = None
    for line in reference.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            section = header.group(1)
            body = text.split(f"\n[{section}]\n", 1)
            assert len(body) == 2, f"no [{section}] section"
            body = body[1].split("\n[", 1)[0]
            continue
        key = re.fullmatch(r"#? ?([a-z_]+) = .*", line)
        if key and section is not None:
            assert re.search(rf"^ +(\w+ \(default [^)]*\), )?{key.group(1)}\b", body, re.M), (
                f"[{section}] {key.group(1)}")
