"""Cold reads people wait for (issue #15): ``okrsync status`` and ``okrsync drill KR --limit 50`` as whole
processes, against ``okrsync --help`` and ``python -c pass`` timed in the same rounds.

* **Setup** (untimed): ``okrsync demo --no-salesforce --dir <tmp>/demo`` (ERP, project, SQLite store, one
  run).
* **Measured**: each command as a fresh process, with its bytecode cached as an installed okrsync has it
  (and, when the benchmark runs under ``PYTHONDONTWRITEBYTECODE=1``, also as started: okrsync's modules
  recompiled by every process), the four commands interleaved round after round (so a
  change of load on the shared machine falls on all of them alike); the median wall time and the median
  CPU time (user + system of the child, less sensitive to other processes than the wall time).
* **Baselines**: ``python -c pass`` (the interpreter's start) and ``okrsync --help`` (typer, rich and the
  command tree: what every command pays before it reads anything).
* **Checks**: neither read imports alembic, pandas, prefect, great_expectations or simple_salesforce
  (``python -X importtime`` of each, parsed).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core import Results, Row

PHASE = "cold reads"
BIN = Path(sys.executable).parent
KR = "KR-REV"
HEAVY = ("alembic", "pandas", "prefect", "great_expectations", "simple_salesforce", "numpy", "pyarrow")


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


def _once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imported(cmd: list[str], env: dict[str, str]) -> set[str]:
    """The top-level packages a command imports (``python -X importtime`` of the same entry point)."""
    code = f"import sys; sys.argv = {['okrsync', *cmd]!r}; from okrsync.cli import main; main()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"okrsync {' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]}")
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def measure(
    commands: dict[str, list[str]], env: dict[str, str], rounds: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) of each command, the commands interleaved in every round (one warm-up round)."""
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for i in range(rounds + 1):
        for name, cmd in commands.items():
            got = _once(cmd, env)
            if i:
                samples[name].append(got)
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in samples.items()}


def run(
    res: Results, *, rounds: int = 9, work_dir: Path | None = None, env: dict[str, str] | None = None
) -> None:
    env = dict(env if env is not None else os.environ)
    with tempfile.TemporaryDirectory(prefix="okrsync-reads-", dir=work_dir) as tmp:
        demo = Path(tmp) / "demo"
        say(f"cold reads: building the demo (no Salesforce) in {demo} …")
        built = subprocess.run([str(BIN / "okrsync"), "demo", "--no-salesforce", "--dir", str(demo)],
                               env=env, capture_output=True, text=True, timeout=600)
        if built.returncode != 0:
            raise RuntimeError(f"okrsync demo failed ({built.returncode}):\n{built.stdout}{built.stderr}")
        project = ["-p", str(demo / "okrsync.yaml")]
        reads = {"status": [*project, "status"], "drill": [*project, "drill", KR, "--limit", "50"]}
        for name, args in reads.items():
            heavy = sorted(imported(args, env) & set(HEAVY))
            res.check(f"okrsync {name} imports none of {', '.join(HEAVY)}", not heavy,
                      f"imported: {', '.join(heavy)}" if heavy else "")
        okrsync = str(BIN / "okrsync")
        commands = {"python": [sys.executable, "-c", "pass"], "help": [okrsync, "--help"],
                    **{k: [okrsync, *v] for k, v in reads.items()}}
        # As installed (pip writes every module's bytecode): a private cache, filled by the warm-up round.
        cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        variants = {"bytecode cached": cached}
        if env.get("PYTHONDONTWRITEBYTECODE"):
            variants["PYTHONDONTWRITEBYTECODE=1"] = env  # okrsync recompiled by every process
        for variant, variant_env in variants.items():
            say(f"  {rounds} rounds ({variant}) of: python -c pass, okrsync --help, status, "
                f"drill {KR} --limit 50 …")
            got = measure(commands, variant_env, rounds)
            note = f"{variant}; median of {rounds}"
            for name, label in (("status", "okrsync status"), ("drill", f"okrsync drill {KR} --limit 50")):
                for i, kind in ((0, "wall"), (1, "CPU")):
                    res.add(Row(PHASE, f"{label}, cold process, {kind}", got[name][i], "s",
                                f"okrsync --help ({kind})", got["help"][i], note=note))
                    res.add(Row(PHASE, f"{label}, cold process, {kind}", got[name][i], "s",
                                f"python -c pass ({kind})", got["python"][i], note=note))
            for name, (wall, cpu) in got.items():
                say(f"    {name}: wall {wall:.3f} s, CPU {cpu:.3f} s")
