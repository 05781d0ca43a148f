"""The daemon benchmarks of issue #7 each run from their one command (bench/*.sh) against the build
under test, at a size that takes seconds: the figures they print are not checked here (a test
asserts behaviour, not speed), only that every job ends and that what they report is complete."""
import json
import os
import subprocess

import harness

BUILD_DIR = harness.BIN_DIR.parent


def run_bench(name, out, *args):
    proc = subprocess.run([harness.SOURCE_DIR / "bench" / f"{name}.sh", "--out", out, *args],
                          env=dict(os.environ, BUILD_DIR=str(BUILD_DIR)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_throughput_runs_every_scenario_to_the_end(tmp_path):
    result = run_bench("throughput", tmp_path / "t.json", "--jobs", "1000",
                       "--latency-ms", "0,20", "--inflight", "16")
    runs = [s["median"] for s in result["scenarios"]]
    assert [(r["latency_ms"], r["max_inflight"]) for r in runs] == [(0, 16), (20, 16)]
    for r in runs:
        assert r["statuses"] == {"created": 1000}, r
        assert r["daemon_cpu_us_per_job"] > 0 and r["daemon_peak_rss_mib"] > 0, r
        assert r["redis_commands"]["top_level_per_job"] <= 3, r
        assert all(r[f"{p}_cpu_wait_us_per_job"] >= 0 for p in ("daemon", "redis", "mock")), r
        assert 0 <= r["machine_idle_share"] <= 1, r
    assert runs[0]["ratio"] is None
    assert 0 < runs[1]["ratio"] <= 1.02, runs[1]


def test_rate_never_exceeds_the_limit(tmp_path):
    result = run_bench("rate", tmp_path / "r.json", "--duration", "3")
    assert result["requests"] > 0
    assert result["busiest_1s_window"] <= result["expected_busiest"], result
    assert result["mean_per_s"] <= result["expected_mean_per_s"] * 1.02, result
    assert len(result["per_second"]) == 3


def test_enqueue_queues_every_job(tmp_path):
    result = run_bench("enqueue", tmp_path / "e.json", "--jobs", "2000")
    assert result["jobs"] == result["ids_printed"] == 2000
    assert result["jobs_per_s"] > 0


def test_soak_samples_rss_while_every_job_is_created(tmp_path):
    result = run_bench("soak", tmp_path / "s.json", "--jobs", "20000", "--backlog", "5000")
    assert result["mock_created"] == 20000
    assert result["samples"], result
    assert 0 < result["rss_first_mib"] <= result["rss_max_mib"] <= result["peak_rss_vmhwm_mib"] + 0.1
