"""`modeldeck --self-test` from source, and the messages a bundle gives on a first run.

The frozen bundle runs the same self-test in CI (.ci/run, after packaging/linux/build.sh).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import selftest
from app.errors import AppError

ROOT = Path(__file__).resolve().parent.parent


def _self_test_env(tmp_path: Path) -> dict[str, str]:
    """No display, and the user's "real" folders pointed at places the test can watch."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env.update(
        MODELDECK_DATA_DIR=str(tmp_path / "real-data"),
        HF_HOME=str(tmp_path / "real-hf"),
        HOME=str(tmp_path / "real-home"),
    )
    return env


def _run_self_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.launcher", "--self-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_self_test_passes_from_source_without_a_display_or_the_users_folders(
    tmp_path: Path,
) -> None:
    env = _self_test_env(tmp_path)
    result = _run_self_test(env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ModelDeck ") and "self-test (source" in lines[0]
    assert any(line.startswith("ok   data folder:") for line in lines)
    assert any(line.startswith("ok   main window:") for line in lines)
    engine = next(line for line in lines if line.startswith("ok   LLM engine:"))
    assert "'Quick fox.'" in engine
    assert lines[-1] == "self-test: 3 passed, 0 failed"
    assert "Traceback" not in result.stderr
    # Nothing of the user's was created or touched: everything ran in a throwaway folder.
    for name in ("real-data", "real-hf", "real-home"):
        assert not (tmp_path / name).exists()


def test_a_missing_llm_runtime_fails_in_one_line_that_says_how_to_get_it(
    tmp_path: Path,
) -> None:
    stub = tmp_path / "stub" / "llama_cpp"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('simulated: no llama.cpp here')\n")
    env = _self_test_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(stub.parent), str(ROOT)])
    result = _run_self_test(env)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1
    assert failed[0].startswith("FAIL LLM engine: The LLM runtime is not installed")
    assert "pip install 'modeldeck[llm]'" in failed[0]
    assert "ok   main window:" in result.stdout  # the other checks still ran
    assert result.stdout.splitlines()[-1] == "self-test: 2 passed, 1 failed"


def test_each_failed_check_is_one_line_and_later_checks_still_run(tmp_path: Path) -> None:
    def crashes(folder: Path) -> str:
        raise RuntimeError("first line\nsecond line")

    def refuses(folder: Path) -> str:
        raise AppError("Not allowed.", hint="Do this instead.")

    results = selftest.run_checks(
        [
            selftest.Check("crashes", crashes),
            selftest.Check("refuses", refuses),
            selftest.Check("works", lambda folder: f"saw {folder.name}"),
        ],
        tmp_path,
    )
    assert [(r.name, r.passed) for r in results] == [
        ("crashes", False),
        ("refuses", False),
        ("works", True),
    ]
    assert results[0].detail == "RuntimeError: first line second line"
    assert results[1].detail == "Not allowed. Do this instead."
    assert results[2].detail == f"saw {tmp_path.name}"


def test_the_report_and_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the UI check here: the core's checks are proven by the subprocess tests above.
    def fake_checks(checks: list[selftest.Check], folder: Path) -> list[selftest.CheckResult]:
        assert [check.name for check in checks] == ["data folder", "window", "LLM engine"]
        assert os.environ["MODELDECK_DATA_DIR"] == str(folder / "data")
        assert os.environ["HOME"] == str(folder / "home")
        return [
            selftest.CheckResult(name="data folder", passed=True, detail="fine", seconds=0.0),
            selftest.CheckResult(name="window", passed=False, detail="no paint", seconds=1.0),
        ]

    # The self-test rewrites the environment: give it a copy, so this process keeps its own.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setattr(selftest, "run_checks", fake_checks)
    out = io.StringIO()
    status = selftest.run_self_test(
        ui_checks=[selftest.Check("window", lambda folder: "")], out=out
    )
    assert status == 1
    lines = out.getvalue().splitlines()
    assert lines[1] == "ok   data folder: fine (0.0 s)"
    assert lines[2] == "FAIL window: no paint (1.0 s)"
    assert lines[3].startswith("note image runtime:")
    assert lines[-1] == "self-test: 1 passed, 1 failed"


# -- a bundle's first-run messages -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "headless"),
    [
        ({}, True),
        ({"QT_QPA_PLATFORM": "xcb"}, True),  # asks for X11, but there is none
        ({"QT_QPA_PLATFORM": "wayland;xcb"}, True),
        ({"QT_QPA_PLATFORM": "offscreen"}, False),
        ({"QT_QPA_PLATFORM": "vnc:size=800x600"}, False),
        ({"DISPLAY": ":0"}, False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ],
)
def test_no_display_is_named_before_qt_fails(
    env: dict[str, str], headless: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui.application import display_problem

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    problem = display_problem()
    if headless:
        assert problem is not None
        assert "ModelDeck needs a display" in problem
        assert "--self-test" in problem and "modeldeck --help" in problem
    else:
        assert problem is None


def test_without_a_display_the_window_command_says_so_and_the_cli_still_works(
    tmp_path: Path,
) -> None:
    env = _self_test_env(tmp_path)
    env["QT_QPA_PLATFORM"] = "xcb"  # a bundle on a server: Qt would abort with a backtrace
    window = subprocess.run(
        [sys.executable, "-m", "ui.launcher"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert window.returncode == 1
    assert window.stderr.startswith("modeldeck: no display found")
    assert "ModelDeck needs a display" in window.stderr
    assert "Traceback" not in window.stderr and "Aborted" not in window.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "ui.launcher", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
