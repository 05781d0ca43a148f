"""What the benchmarks read of the machine and of a process (/proc): CPU time, memory."""
import os
import platform
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid):
    """user + system CPU time of pid, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cpu_wait_seconds(pid):
    """Time pid's threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def idle_seconds():
    """CPU time the whole machine spent idle since boot, summed over its CPUs (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / CLK_TCK  # idle + iowait


def status_kib(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_kib(pid):
    """Resident set size from statm (cheaper than status, for the 1-s sampling)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def machine():
    """The machine a result was measured on."""
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
