"""`scripts/start` installs every runtime a user reaches from the window, the local API's
libraries (the `serve` extra) included; `scripts/bootstrap` reinstalls when that set changes.

Bootstrap runs for real in a copy of the repository whose `.venv/bin/python` is a stand-in
that writes down what pip was asked for (no package is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Extras that are for building or testing ModelDeck, not for using it.
NOT_FOR_USERS = {"dev", "packaging"}


def start_extras() -> set[str]:
    text = (ROOT / "scripts" / "start").read_text()
    match = re.search(r"^scripts/bootstrap ([\w,]+)\s*$", text, re.MULTILINE)
    assert match, "scripts/start must call scripts/bootstrap with its extras"
    return set(match.group(1).split(","))


def test_start_installs_every_extra_a_user_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    user_extras = set(pyproject["project"]["optional-dependencies"]) - NOT_FOR_USERS
    assert "serve" in user_extras
    assert start_extras() == user_extras


def run_bootstrap(repo: Path, extras: str) -> list[str]:
    log = repo / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(
        ["bash", "scripts/bootstrap", extras],
        cwd=repo,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "TORCH_SPEC": "torch==0"},
        capture_output=True,
    )
    return log.read_text().splitlines() if log.exists() else []


def test_bootstrap_installs_the_start_extras_and_again_when_they_change(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap", repo / "scripts" / "bootstrap")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    fake = repo / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{repo}/pip.log"\n')
    fake.chmod(0o755)

    extras = ",".join(sorted(start_extras(), key=["llm", "image", "serve"].index))
    calls = run_bootstrap(repo, extras)
    assert f"-m pip install --quiet --editable .[{extras}]" in calls
    assert "-m pip install --quiet torch==0" in calls  # the image runtime's pinned torch
    assert run_bootstrap(repo, extras) == []  # current: nothing to do
    # A checkout installed with the old set (no serve) is brought up to date on next start.
    run_bootstrap(repo, "llm,image")
    assert f"-m pip install --quiet --editable .[{extras}]" in run_bootstrap(repo, extras)
