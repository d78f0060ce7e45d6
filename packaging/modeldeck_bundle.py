"""What a ModelDeck bundle holds: the declarations `modeldeck.spec` hands to PyInstaller.

Kept apart from the spec so the tests can read them (tests/test_packaging.py). Two kinds:

- base (default): the app and the llama.cpp runtime (CPU build, or whatever build of
  llama-cpp-python the build venv holds). torch and diffusers are left out.
- full (`MODELDECK_BUNDLE=full`): the base plus the image runtime (torch, diffusers,
  transformers, accelerate, safetensors) from the build venv.

This folder has no `__init__.py` on purpose: a package named `packaging` would hide the
PyPI one that pip, setuptools and pytest import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "ui" / "launcher.py"  # the `modeldeck` console script's module
NAME = "modeldeck"
BUNDLE_ENV = "MODELDECK_BUNDLE"  # "base" or "full"

# Engines start with multiprocessing "spawn": the child imports its entry module by name, so
# nothing in the parent's import graph has to reach it. Declare them.
ENGINE_CHILD_MODULES = ("app.llm.llama_worker", "app.images.diffusers_worker")

# The image runtime: imported only in the image engine's child, ~1.3 GB installed (CPU torch).
IMAGE_RUNTIME = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "safetensors")

# Distributions whose metadata diffusers and transformers read at import (importlib.metadata
# version checks): without it, `import diffusers` fails in the bundle ("the 'requests'
# distribution was not found").
IMAGE_RUNTIME_METADATA = (
    "requests",
    "filelock",
    "numpy",
    "tqdm",
    "regex",
    "packaging",
    "huggingface-hub",
    "safetensors",
    "accelerate",
    "pyyaml",
    "tokenizers",
    "torch",
    "diffusers",
    "transformers",
)

# Never in a bundle: test and development tools, and toolkits nothing here uses. PyInstaller
# would otherwise follow optional imports of huggingface_hub, llama_cpp and friends into them.
NEVER_BUNDLED = (
    "tkinter",
    "pytest",
    "_pytest",
    "pytestqt",
    "IPython",
    "matplotlib",
    "mypy",
    "ruff",
    "importlinter",
    "grimp",
    "llama_cpp.server",  # llama-cpp-python's own server: only the tests use it
    # Build tools: nothing imports them at run time, yet with setuptools in the bundle
    # PyInstaller's runtime hook imports it at every start (~60 ms).
    "setuptools",
    "pkg_resources",
    "distutils",
    "_distutils_hack",
    "PySide6.QtNetwork",  # hub traffic goes through huggingface_hub, not Qt
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtOpenGL",
    "PySide6.QtPdf",
)

# llama_cpp loads lib/libllama.so (…dylib, llama.dll) with ctypes, so PyInstaller's import
# analysis cannot see it. The wheel holds each library three times (libggml.so, .so.0,
# .so.0.25.3; plain copies): the loader opens `libNAME.so` and the libraries need each other
# by soname (`libggml.so.0`), so those two names are enough.
LLAMA_LIBRARY_PATTERNS = ("lib*.so", "lib*.so.?", "*.dylib", "*.dll")

# Sizes each platform asks for (pixels). Linux: the hicolor theme; macOS: the .icns set
# (16…512 at 1x and 2x); Windows: the .ico set.
LINUX_ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
MACOS_ICON_SIZES = (16, 32, 64, 128, 256, 512, 1024)
WINDOWS_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICON_SIZES = tuple(sorted({*LINUX_ICON_SIZES, *MACOS_ICON_SIZES, *WINDOWS_ICON_SIZES}))


def bundle_kind() -> str:
    """ "base" or "full", from MODELDECK_BUNDLE; anything else is a mistake worth stopping."""
    kind = os.environ.get(BUNDLE_ENV, "base") or "base"
    if kind not in ("base", "full"):
        raise SystemExit(f"{BUNDLE_ENV} must be 'base' or 'full', not {kind!r}")
    return kind


def hidden_imports() -> list[str]:
    """Modules PyInstaller cannot find by following imports."""
    from PyInstaller.utils.hooks import collect_submodules

    # Pages and commands are imported inside functions (to start fast): take all of app and ui.
    modules = [*ENGINE_CHILD_MODULES, *collect_submodules("app"), *collect_submodules("ui")]
    # The LLM child's runtime, and the self-test's GGUF writer (imported inside functions).
    modules += ["llama_cpp", "llama_cpp.llama_cpp", "gguf", "qasync"]
    if bundle_kind() == "full":
        modules += ["torch", "diffusers", "transformers", "accelerate", "safetensors"]
    return sorted(dict.fromkeys(modules))


def excludes() -> list[str]:
    """Modules to leave out of this kind of bundle."""
    left_out = list(NEVER_BUNDLED)
    if bundle_kind() == "base":
        left_out += IMAGE_RUNTIME
    return left_out


def llama_binaries() -> list[tuple[str, str]]:
    """(source, folder in the bundle) for each llama.cpp shared library; none is an error."""
    from PyInstaller.utils.hooks import collect_dynamic_libs

    binaries: list[tuple[str, str]] = collect_dynamic_libs(
        "llama_cpp", search_patterns=list(LLAMA_LIBRARY_PATTERNS)
    )
    if not any(Path(source).name.startswith(("libllama.", "llama.")) for source, _ in binaries):
        raise SystemExit(
            "llama-cpp-python's shared libraries were not found: install the llm extra into "
            "the build venv first (pip install '.[llm,packaging]')."
        )
    return binaries


def data_files(icons: Path) -> list[tuple[str, str]]:
    """(source, folder in the bundle): resources, the image configs, the built icons."""
    from PyInstaller.utils.hooks import collect_data_files

    datas = [(str(ROOT / "resources"), "resources")]
    # Reference configs for single-file image checkpoints, read with importlib.resources.
    datas += collect_data_files("app.images")
    # The rendered icons, for the window icon on platforms without an SVG image plugin.
    datas += [(str(path), "resources/icons") for path in sorted(icons.glob("*.png"))]
    if bundle_kind() == "full":
        from importlib.metadata import PackageNotFoundError

        from PyInstaller.utils.hooks import copy_metadata

        for distribution in IMAGE_RUNTIME_METADATA:
            try:
                datas += copy_metadata(distribution)
            except PackageNotFoundError:
                raise SystemExit(
                    f"the full bundle needs {distribution} in the build venv: "
                    "pip install -e '.[llm,image,packaging]'"
                ) from None
    return datas


def platform_icon(icons: Path) -> str | None:
    """The executable's icon: .ico on Windows, .icns on macOS, none on Linux (the .desktop's)."""
    suffix = {"win32": ".ico", "darwin": ".icns"}.get(sys.platform)
    if suffix is None:
        return None
    icon = icons / f"{NAME}{suffix}"
    if not icon.is_file():
        raise SystemExit(f"{icon} is missing: run packaging/make_icons.py {icons} first")
    return str(icon)
