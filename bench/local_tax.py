"""The local run tax: ``okrsync run`` on the demo with nothing changed, against the same work without
Prefect, both timed as whole processes (issue #11, item 9: at most 1.5×).

* **Setup** (untimed): ``okrsync demo --no-salesforce --dir <tmp>/demo`` builds the demo ERP (SQLite), its
  project file and store, and runs it once; then one untimed run of each configuration below, so every
  timed run is a "nothing changed" run with warm file caches.
* **Baseline**: ``python -P bench/plain_run.py <project>``: load the project, open the store, register
  the OKRs, ``store.start_run``, ``pipeline.sync_stream`` for each stream, ``compute.compute_values``,
  ``store.finish_run`` — direct calls and nothing else (no lease, heartbeat, CLI, Prefect).
* **Measured**: the ``okrsync -p <project> run`` console script, ``PREFECT_API_URL`` unset and
  ``PREFECT_HOME`` an empty directory (no profile configures an API): it runs in-process.
* **Informational** (``--tax-prefect``): ``okrsync run`` with ``PREFECT_API_URL`` pointing at a
  ``prefect server start`` on a free loopback port (own ``PREFECT_HOME``, analytics and UI off), and the
  old way, ``python -c "from flows.okr_flow import okrsync_run; okrsync_run(project_file=…)"`` with no
  API (Prefect's temporary ephemeral server, 180 s start-up timeout, its ``PREFECT_HOME`` kept between
  runs like a user's ``~/.prefect``). Each has its own baseline, interleaved in the same block (the
  server idles in the background during its block).

Each configuration runs ``repeats`` times, interleaved with its baseline (baseline, measured, baseline,
measured, …); wall time (median and min) and the child's CPU time (user + sys, ``RUSAGE_CHILDREN``) are
reported. All processes get the environment the benchmark was started with (``PYTHONDONTWRITEBYTECODE``
included, reported), minus Prefect settings that would point a run at an API.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import ROOT, Results, Row

PHASE = "local run tax"
REPEATS = 5
TARGET = 1.5
BIN = Path(sys.executable).parent
PLAIN_RUN = ROOT / "bench" / "plain_run.py"
# Prefect settings that could send a run to an API or change where its settings come from.
DROPPED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH", "PREFECT_HOME")
PULLED = re.compile(r"(\d[\d,]*) rows pulled")


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


@dataclass
class Timing:
    """The runs of one configuration: wall seconds, child CPU seconds, exit statuses."""

    label: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    timeout: float = 600.0

    def run(self) -> tuple[float, float, int, str]:
        """(wall seconds, child CPU seconds, exit status, stdout + stderr) of one process."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            self.argv, env=dict(self.env), cwd=self.cwd, capture_output=True, text=True, timeout=self.timeout
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, done.returncode, done.stdout + done.stderr


def interleaved(commands: dict[str, Command], repeats: int) -> dict[str, Timing]:
    """One untimed run of each command, then ``repeats`` rounds of all of them in turn."""
    out = {label: Timing(label) for label in commands}
    for label, cmd in commands.items():
        _, _, code, text = cmd.run()
        if code not in (0, 1):
            raise RuntimeError(f"{label}: exit status {code}\n{text[-2000:]}")
    for i in range(repeats):
        line = []
        for label, cmd in commands.items():
            wall, cpu, code, text = cmd.run()
            t = out[label]
            t.wall.append(wall)
            t.cpu.append(cpu)
            t.codes.append(code)
            t.outputs.append(text)
            line.append(f"{label} {wall:.2f} s")
        say(f"  round {i + 1}/{repeats}: " + " · ".join(line))
    return out


def pulled_nothing(t: Timing) -> bool:
    """Every run exited 0 and every 'N rows pulled' it printed says 0."""
    counts = [int(n.replace(",", "")) for text in t.outputs for n in PULLED.findall(text)]
    return all(c == 0 for c in t.codes) and bool(counts) and not any(counts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:  # noqa: S310 (loopback http)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def prefect_server(env: Mapping[str, str], home: Path, log: Path) -> Iterator[tuple[str, float]]:
    """A ``prefect server start`` on a free loopback port: (its API URL, seconds to healthy)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = {
        **env,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_API_URL": url,
    }
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server start exited with {proc.returncode}: {_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not answer /api/health in 180 s: {_tail(log)}")
            time.sleep(0.25)
        yield url, time.perf_counter() - start
    finally:
        _stop(proc)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (it was started in a new session), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def base_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment the benchmark was started with, without what would point a run at an API."""
    return {k: v for k, v in (env if env is not None else os.environ).items() if k not in DROPPED}


def _row(
    metric: str, t: Timing, base: Timing, baseline: str, how: Callable[[Timing], float], note: str
) -> Row:
    return Row(PHASE, metric, how(t), "s", baseline, how(base), note=note)


def _rows(res: Results, name: str, t: Timing, base: Timing, baseline: str, note: str) -> None:
    n = len(t.wall)
    cpu = f"CPU {t.cpu_median:.2f} s vs {base.cpu_median:.2f} s ({t.cpu_median / base.cpu_median:.2f}×)"
    res.add(_row(f"{name}: median of {n}", t, base, f"{baseline}, median", lambda x: x.median,
                 f"{note}; {cpu}" if note else cpu))
    res.add(_row(f"{name}: min of {n}", t, base, f"{baseline}, min", lambda x: x.min, ""))


def run(res: Results, *, repeats: int = REPEATS, prefect: bool = False, env: Mapping[str, str] | None = None,
        work_dir: Path | None = None) -> None:
    """Measure the local run tax into ``res`` (rows, checks, ``extra["local_tax"]``)."""
    base_env = base_environment(env)
    with tempfile.TemporaryDirectory(prefix="okrsync-tax-", dir=work_dir) as tmp:
        work = Path(tmp)
        empty_home = work / "prefect-empty"
        empty_home.mkdir()
        local_env = {**base_env, "PREFECT_HOME": str(empty_home)}
        demo = work / "demo"
        say(f"local run tax: building the demo (no Salesforce) in {demo} and running it once …")
        built = subprocess.run(
            [str(BIN / "okrsync"), "demo", "--no-salesforce", "--dir", str(demo)],
            env=local_env, cwd=work, capture_output=True, text=True, timeout=600,
        )
        if built.returncode != 0:
            raise RuntimeError(f"okrsync demo failed ({built.returncode}):\n{built.stdout}{built.stderr}")
        project = demo / "okrsync.yaml"
        baseline = Command([sys.executable, "-P", str(PLAIN_RUN), str(project)], local_env, work)
        okrsync_run = Command([str(BIN / "okrsync"), "-p", str(project), "run"], local_env, work)
        info = {
            "PYTHONDONTWRITEBYTECODE": base_env.get("PYTHONDONTWRITEBYTECODE"),
            "repeats": repeats,
            "baseline": "python -P bench/plain_run.py <project>",
            "measured": "okrsync -p <project> run (no PREFECT_API_URL, empty PREFECT_HOME)",
        }
        res.extra["local_tax"] = info
        say(f"  baseline / okrsync run, {repeats} interleaved rounds (after one untimed run of each) …")
        main = interleaved({"baseline": baseline, "okrsync run": okrsync_run}, repeats)
        base, local = main["baseline"], main["okrsync run"]
        res.check("local: the baseline and okrsync run exit 0 and pull 0 rows",
                  pulled_nothing(base) and pulled_nothing(local),
                  f"exit {sorted(set(base.codes))} / {sorted(set(local.codes))}")
        leftovers = sorted(p.name for p in empty_home.iterdir())
        res.check("local: okrsync run started no Prefect server (its PREFECT_HOME stays empty)",
                  not leftovers, ", ".join(leftovers))
        bytecode = f"PYTHONDONTWRITEBYTECODE={info['PYTHONDONTWRITEBYTECODE'] or 'unset'}"
        _rows(res, "okrsync run, no Prefect API (in-process)", local, base, "direct calls",
              f"target ≤ {TARGET}×; {bytecode}")
        info |= {"baseline_s": base.wall, "local_s": local.wall,
                 "baseline_cpu_s": base.cpu, "local_cpu_s": local.cpu}
        if not prefect:
            return
        say("  starting prefect server (own PREFECT_HOME, analytics and UI off) …")
        with prefect_server(base_env, work / "prefect-server", work / "prefect-server.log") as (url, up_s):
            say(f"  server healthy after {up_s:.1f} s at {url}; baseline / okrsync run via the server …")
            client_home = work / "prefect-client"
            client_home.mkdir()
            via = Command([str(BIN / "okrsync"), "-p", str(project), "run"],
                          {**base_env, "PREFECT_HOME": str(client_home), "PREFECT_API_URL": url}, work)
            served = interleaved({"baseline": baseline, "okrsync run via server": via}, repeats)
        b_a, t_a = served["baseline"], served["okrsync run via server"]
        res.check("server: okrsync run via prefect server exits 0 and pulls 0 rows", pulled_nothing(t_a),
                  f"exit {sorted(set(t_a.codes))}")
        _rows(res, "(a) okrsync run via prefect server", t_a, b_a, "direct calls (same block)",
              f"informational; server start {up_s:.1f} s not included, it idles during the block")
        info |= {"server_start_s": up_s, "server_baseline_s": b_a.wall, "server_s": t_a.wall}
        say("  baseline / old way: okrsync_run flow with no API (ephemeral server per process) …")
        eph_home = work / "prefect-ephemeral"
        eph_home.mkdir()
        code = f"from flows.okr_flow import okrsync_run; okrsync_run(project_file={str(project)!r})"
        old = Command(
            [sys.executable, "-c", code],
            {
                **base_env,
                "PREFECT_HOME": str(eph_home),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            },
            work,
        )
        ephemeral = interleaved({"baseline": baseline, "old way (ephemeral)": old}, repeats)
        b_b, t_b = ephemeral["baseline"], ephemeral["old way (ephemeral)"]
        states = sorted({_final_state(text, rc) for text, rc in zip(t_b.outputs, t_b.codes, strict=True)})
        _rows(res, "(b) old way: okrsync_run flow, ephemeral server", t_b, b_b, "direct calls (same block)",
              f"informational; ends {', '.join(states)}; its PREFECT_HOME kept between runs")
        info |= {"ephemeral_baseline_s": b_b.wall, "ephemeral_s": t_b.wall, "ephemeral_states": states}
        shutil.rmtree(eph_home, ignore_errors=True)


def _final_state(text: str, code: int) -> str:
    """'Completed' / 'Failed' / … from Prefect's last 'Finished in state' line, else the exit status."""
    found = re.findall(r"Finished in state (\w+)", text)
    return found[-1] if found else f"exit {code}"
