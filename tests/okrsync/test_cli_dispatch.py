"""``okrsync.cli.main`` hands typer only the command a user invoked (so typer does not build the click
command of every other one first), and that command behaves exactly as in the whole command tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from okrsync.cli import app
from okrsync.cli.app import _invoked, _only


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["status"], "status"),
        (["-p", "x.yaml", "status", "--json"], "status"),
        (["--project", "x.yaml", "--debug", "drill", "KR-1", "--limit", "50"], "drill"),
        (["--project=x.yaml", "checks", "list"], "checks"),
        (["-px.yaml", "history", "KR-1"], "history"),
        (["--debug", "-p", "status", "status"], "status"),  # a project file named "status"
        (["-p", "status"], None),  # "status" is the project file: no command
        ([], None),
        (["--help"], None),
        (["--help", "status"], None),
        (["--unknown", "status"], None),
        (["-p", "x.yaml", "--", "status"], None),
    ],
)
def test_the_invoked_command_is_read_past_the_root_options(args: list[str], name: str | None) -> None:
    assert _invoked(args) == name


def _names(a: typer.Typer) -> list[str]:
    group = get_command(a)
    assert isinstance(group, typer.core.TyperGroup)
    return sorted(group.commands)


def test_only_the_invoked_command_or_group_is_built() -> None:
    everything = _names(app)
    assert {"status", "drill", "history", "checks", "kr"} <= set(everything) and len(everything) > 10
    assert _names(_only("status")) == ["status"]
    assert _names(_only("drill")) == ["drill"]
    assert _names(_only("checks")) == ["checks"]
    assert _names(_only("restatements")) == ["restatements"]
    for unknown in ("stauts", None):  # the whole tree: click's "No such command" and suggestions
        assert _only(unknown) is app
    assert _names(app) == everything  # the copy left the app whole


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--help"],
        ["drill", "--help"],
        ["checks", "--help"],
        ["checks", "list", "--help"],
        ["users", "add", "--help"],
        ["drill"],  # a missing argument: the same usage error
        ["status", "--stale-after", "soon"],  # a bad value: the same message
    ],
)
def test_a_command_reads_and_answers_the_same_alone(args: list[str], tmp_path: Path) -> None:
    runner = CliRunner()
    full = runner.invoke(app, ["-p", str(tmp_path / "none.yaml"), *args])
    alone = runner.invoke(_only(args[0]), ["-p", str(tmp_path / "none.yaml"), *args])
    assert (alone.exit_code, alone.output) == (full.exit_code, full.output)
    assert full.output.strip()


def test_the_objects_of_a_run_are_left_to_the_exit_of_the_process(tmp_path: Path) -> None:
    """main() freezes the garbage collector's objects as the command ends (freeing them one by one
    at interpreter exit cost a cold `status` ~0.15 s of CPU), and atexit handlers still run after."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "print('frozen at start:', gc.get_freeze_count() > 0)\n"
        "sys.argv = ['okrsync', '--help']\n"
        "from okrsync.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "frozen at start: False" in done.stdout and done.stdout.rstrip().endswith("frozen at exit: True")
    assert "Usage:" in done.stdout
