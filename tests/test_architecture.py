"""The product's shape, checked: the core never loads Qt; nothing outside the engines loads the
heavy runtimes; the CLI starts without Qt. (import-linter checks the static imports too.)"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import app

QT_MODULES = ("PySide6", "shiboken6", "qasync")
HEAVY_MODULES = ("torch", "diffusers", "transformers", "llama_cpp")
ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_every_core_module_imports_without_qt_or_heavy_runtimes() -> None:
    modules = [info.name for info in pkgutil.walk_packages(app.__path__, "app.")]
    assert "app.hub.huggingface" in modules  # the walk found the real tree
    loaded = _loaded_after("\n".join(f"import {name}" for name in modules))
    assert not loaded & set(QT_MODULES)
    assert not loaded & set(HEAVY_MODULES)


def test_the_command_line_runs_without_qt() -> None:
    loaded = _loaded_after(
        "from ui.launcher import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    )
    assert "app" in loaded
    assert not loaded & set(QT_MODULES)
