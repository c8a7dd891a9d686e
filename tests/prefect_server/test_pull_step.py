"""The deployments' pull step (okrsync.deploy.check_installed), without a server: what it returns where
okrsync is installed, and what it says where the flow cannot be imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from okrsync import deploy


def test_the_pull_step_returns_the_installed_version() -> None:
    out = deploy.check_installed()
    assert out["okrsync_version"] and out["okrsync_location"].endswith("okrsync")


def test_the_pull_step_says_what_to_install_when_the_flow_does_not_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deploy, "ENTRYPOINT", "okrsync_missing_module.okr_flow.okrsync_run")
    with pytest.raises(deploy.NotInstalledError) as exc:
        deploy.check_installed()
    message = str(exc.value)
    assert message.startswith("okrsync: cannot import the flow okrsync_missing_module.okr_flow.okrsync_run")
    assert "ModuleNotFoundError" in message and "pip install" in message


def test_python_m_okrsync_deploy_check() -> None:
    p = subprocess.run([sys.executable, "-m", "okrsync.deploy", "check"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "okrsync_version" in p.stdout
