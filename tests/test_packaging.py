"""The bundles' declarations (packaging/), the desktop resources, and the launcher's file paths.

Building a bundle takes minutes, so CI does that once after the tests (.ci/run); these check
what each build reads: the spec's inputs, the icons, the .desktop file, Info.plist, the Inno
Setup script, and that the version has one source.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import app
from ui import launcher

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "resources"
MIME_TYPES = {"application/x-gguf": "*.gguf", "application/x-safetensors": "*.safetensors"}


@pytest.fixture(scope="module")
def bundle() -> ModuleType:
    """packaging/modeldeck_bundle.py, loaded by path (packaging/ is no package: see its doc)."""
    spec = importlib.util.spec_from_file_location(
        "modeldeck_bundle", PACKAGING / "modeldeck_bundle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def base_bundle(monkeypatch: pytest.MonkeyPatch, bundle: ModuleType) -> Iterator[ModuleType]:
    monkeypatch.delenv(bundle.BUNDLE_ENV, raising=False)
    yield bundle


# -- the spec ---------------------------------------------------------------------------------


def test_the_spec_builds_the_console_scripts_entry_point_from_the_declarations(
    bundle: ModuleType,
) -> None:
    spec = (PACKAGING / "modeldeck.spec").read_text()
    tree = ast.parse(spec)  # a spec is Python
    calls = {
        node.func.id: node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"} <= set(calls)  # one folder (+ .app)
    analysis = {keyword.arg: ast.unparse(keyword.value) for keyword in calls["Analysis"].keywords}
    assert analysis["binaries"] == "bundle.llama_binaries()"
    assert analysis["hiddenimports"] == "bundle.hidden_imports()"
    assert analysis["excludes"] == "bundle.excludes()"
    assert analysis["datas"] == "bundle.data_files(icons)"
    assert ast.unparse(calls["Analysis"].args[0]) == "[str(bundle.ENTRY)]"
    exe = {keyword.arg: ast.unparse(keyword.value) for keyword in calls["EXE"].keywords}
    assert exe["exclude_binaries"] == "True"  # one folder, not one file
    # The entry is the module of the `modeldeck` console script.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["modeldeck"].partition(":")
    assert Path(*module.split(".")).with_suffix(".py") == bundle.ENTRY.relative_to(ROOT)
    assert f"sys.exit({function}())" in bundle.ENTRY.read_text()


def test_every_engine_child_module_is_a_hidden_import(base_bundle: ModuleType) -> None:
    pytest.importorskip("PyInstaller")
    # Any module with a child entry `main(connection)` is started by name through spawn.
    children = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "app").rglob("*.py")
        if re.search(r"^def main\(connection: Connection\)", path.read_text(), re.MULTILINE)
    }
    assert children == set(base_bundle.ENGINE_CHILD_MODULES)
    hidden = base_bundle.hidden_imports()
    assert children <= set(hidden)
    assert {"app.selftest", "app.tiny_gguf", "ui.application", "llama_cpp", "gguf"} <= set(hidden)


def test_the_llama_cpp_libraries_are_collected_once_each_into_llama_cpp_lib(
    base_bundle: ModuleType,
) -> None:
    pytest.importorskip("PyInstaller")
    llama_cpp = importlib.util.find_spec("llama_cpp")
    if llama_cpp is None or llama_cpp.origin is None:
        pytest.skip("llama-cpp-python is not installed")
    lib = Path(llama_cpp.origin).parent / "lib"
    binaries = base_bundle.llama_binaries()
    names = {Path(source).name for source, _ in binaries}
    assert {dest for _, dest in binaries} == {os.path.join("llama_cpp", "lib")}
    if sys.platform.startswith("linux"):
        # What llama_cpp opens by name, and what those libraries need by soname.
        assert {"libllama.so", "libggml.so", "libggml-base.so.0", "libggml.so.0"} <= names
        needed = {
            soname
            for path in lib.glob("lib*.so")
            for soname in _needed_sonames(path)
            if (lib / soname).exists()
        }
        assert needed <= names
        # The fully versioned copies (libllama.so.0.5.0) are not needed twice more.
        assert not [name for name in names if re.search(r"\.so\.\d+\.\d+", name)]


def _needed_sonames(path: Path) -> list[str]:
    if shutil.which("readelf") is None:
        return []
    dynamic = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def test_the_base_bundle_leaves_the_image_runtime_out_and_the_full_one_keeps_it(
    monkeypatch: pytest.MonkeyPatch, bundle: ModuleType
) -> None:
    monkeypatch.delenv(bundle.BUNDLE_ENV, raising=False)
    assert {"torch", "diffusers", "transformers"} <= set(bundle.excludes())
    assert {"pytest", "tkinter", "llama_cpp.server"} <= set(bundle.excludes())
    monkeypatch.setenv(bundle.BUNDLE_ENV, "full")
    assert not {"torch", "diffusers", "transformers"} & set(bundle.excludes())
    monkeypatch.setenv(bundle.BUNDLE_ENV, "huge")
    with pytest.raises(SystemExit, match="must be 'base' or 'full'"):
        bundle.bundle_kind()


def test_the_bundle_carries_the_resources_and_the_image_configs(
    base_bundle: ModuleType, tmp_path: Path
) -> None:
    pytest.importorskip("PyInstaller")
    (tmp_path / "modeldeck-16.png").write_bytes(b"png")
    datas = base_bundle.data_files(tmp_path)
    assert (str(RESOURCES), "resources") in datas
    assert (str(tmp_path / "modeldeck-16.png"), "resources/icons") in datas
    configs = [source for source, dest in datas if dest.startswith(os.path.join("app", "images"))]
    assert any(source.endswith("model_index.json") for source in configs)


# -- the version --------------------------------------------------------------------------------


def test_the_version_has_one_source() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "app.__version__"}
    spec = (PACKAGING / "modeldeck.spec").read_text()
    assert "from app import __version__" in spec
    for script in ("linux/build.sh", "macos/build.sh", "windows/build.ps1"):
        assert "import app; print(app.__version__)" in (PACKAGING / script).read_text()
    # No file that goes into a package repeats the number.
    version = re.escape(app.__version__)
    for path in [*PACKAGING.rglob("*"), *RESOURCES.rglob("*")]:
        if path.is_file() and path.suffix in (".sh", ".ps1", ".iss", ".spec", ".plist", ".py"):
            assert not re.search(rf"\b{version}\b", path.read_text()), path


# -- icons ------------------------------------------------------------------------------------


def test_the_icons_are_rendered_at_every_size_each_platform_needs(
    bundle: ModuleType, tmp_path: Path
) -> None:
    pil = pytest.importorskip("PIL.Image")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(
        [sys.executable, str(PACKAGING / "make_icons.py"), str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    for size in bundle.ICON_SIZES:
        with pil.open(tmp_path / f"modeldeck-{size}.png") as image:
            assert image.size == (size, size)
            assert image.mode == "RGBA"
            assert image.getpixel((0, 0))[3] == 0  # transparent corners, drawn from the SVG
            assert image.getpixel((size // 2, size // 2))[3] == 255
    assert {16, 32, 48, 256, 1024} <= set(bundle.ICON_SIZES)
    with pil.open(tmp_path / "modeldeck.ico") as ico:
        assert set(ico.info["sizes"]) == {(s, s) for s in bundle.WINDOWS_ICON_SIZES}
    with pil.open(tmp_path / "modeldeck.icns") as icns:
        assert icns.size == (1024, 1024)  # the largest: 512 pt at 2x
        assert (512, 512, 2) in icns.info["sizes"]
        assert (16, 16, 2) in icns.info["sizes"]
    # The Linux sizes all go into the hicolor theme, and the AppImage takes the 256 one.
    assert set(bundle.LINUX_ICON_SIZES) <= set(bundle.ICON_SIZES)
    assert "modeldeck-256.png" in (PACKAGING / "linux" / "build.sh").read_text()


# -- the .desktop file and MIME types ---------------------------------------------------------


def test_the_desktop_file_is_valid_and_opens_model_files() -> None:
    desktop = RESOURCES / "modeldeck.desktop"
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run(
            [validator, str(desktop)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "", result.stdout  # not even a hint
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(desktop)
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "ModelDeck"
    assert entry["Icon"] == "modeldeck"
    assert entry["Exec"].split()[0] == "modeldeck"
    assert "%F" in entry["Exec"].split()  # files, as local paths the launcher imports
    assert set(filter(None, entry["MimeType"].split(";"))) == set(MIME_TYPES)
    assert entry["Categories"].endswith(";")


def test_the_mime_types_the_desktop_file_names_are_defined() -> None:
    namespace = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    tree = ET.parse(RESOURCES / "mime" / "modeldeck.xml")
    defined = {
        node.get("type"): [glob.get("pattern") for glob in node.findall("m:glob", namespace)]
        for node in tree.getroot().findall("m:mime-type", namespace)
    }
    assert defined == {mime: [glob] for mime, glob in MIME_TYPES.items()}


# -- macOS ------------------------------------------------------------------------------------


def test_info_plist_declares_the_document_types_it_opens() -> None:
    with (RESOURCES / "macos" / "Info.plist").open("rb") as file:
        info = plistlib.load(file)
    assert info["CFBundleIdentifier"].count(".") >= 2
    assert "CFBundleShortVersionString" not in info  # the spec adds the version at build time
    exported = {
        declaration["UTTypeIdentifier"]: declaration
        for declaration in info["UTExportedTypeDeclarations"]
    }
    extensions = {
        extension: identifier
        for identifier, declaration in exported.items()
        for extension in declaration["UTTypeTagSpecification"]["public.filename-extension"]
    }
    assert set(extensions) == {"gguf", "safetensors"}
    for declaration in exported.values():
        assert "public.data" in declaration["UTTypeConformsTo"]
        assert declaration["UTTypeIdentifier"].startswith(info["CFBundleIdentifier"].lower()[:10])
        mime = declaration["UTTypeTagSpecification"]["public.mime-type"]
        assert set(mime) <= set(MIME_TYPES)
    handled = {
        content_type
        for document in info["CFBundleDocumentTypes"]
        for content_type in document["LSItemContentTypes"]
    }
    assert handled == set(exported)
    for document in info["CFBundleDocumentTypes"]:
        assert document["CFBundleTypeRole"] in ("Viewer", "Editor")
    entitlements = plistlib.loads((PACKAGING / "macos" / "entitlements.plist").read_bytes())
    assert entitlements["com.apple.security.cs.disable-library-validation"] is True


# -- Windows ----------------------------------------------------------------------------------


def test_the_inno_setup_script_takes_the_version_and_associates_the_model_files() -> None:
    script = (PACKAGING / "windows" / "modeldeck.iss").read_text()
    assert "#error" in script.split("#endif")[0]  # no version passed: no installer
    assert "AppVersion={#AppVersion}" in script
    assert "OutputBaseFilename=ModelDeck-{#AppVersion}-setup" in script
    assert '"/DAppVersion=$version"' in (PACKAGING / "windows" / "build.ps1").read_text()
    assert re.search(r"^AppId=\{\{[0-9A-F-]{36}\}$", script, re.MULTILINE)
    assert 'Name: "{group}\\{#AppName}"; Filename: "{app}\\{#AppExe}"' in script  # Start menu
    assert "{uninstallexe}" in script
    for extension in ("gguf", "safetensors"):
        assert f'Subkey: "Software\\Classes\\.{extension}\\OpenWithProgids"' in script
        command = f'Subkey: "Software\\Classes\\ModelDeck.{extension}\\shell\\open\\command"'
        line = next(line for line in script.splitlines() if command in line)
        assert '""{app}\\{#AppExe}"" ""%1""' in line
    assert "ChangesAssociations=yes" in script


# -- the scripts ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["linux/build.sh", "macos/build.sh"])
def test_the_shell_scripts_parse_and_stop_on_errors(script: str) -> None:
    path = PACKAGING / script
    assert os.access(path, os.X_OK)
    assert "set -euo pipefail" in path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_the_linux_script_stops_before_building_when_appimagetool_is_missing(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, APPIMAGETOOL=str(tmp_path / "no-appimagetool"), PYTHON=sys.executable)
    result = subprocess.run(
        [str(PACKAGING / "linux" / "build.sh"), "appimage"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "appimagetool is missing" in result.stderr
    assert "APPIMAGETOOL" in result.stderr
    assert "== bundle" not in result.stdout  # it checked first, built nothing


def test_the_linux_script_refuses_an_unknown_target() -> None:
    result = subprocess.run(
        [str(PACKAGING / "linux" / "build.sh"), "snap"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "unknown target 'snap'" in result.stderr


def test_ci_runs_the_tests_first_then_the_bundles_self_test() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    assert "exec " not in ci  # an exec would end the script before the bundle
    steps = [line for line in ci.splitlines() if line and not line.startswith(("#", "echo"))]
    commands = [line for line in steps if not line.startswith(("set ", "cd "))]
    assert commands[0] == "scripts/test"
    assert commands[1].startswith("packaging/linux/build.sh")
    assert commands[2].endswith("--self-test")


# -- opening files: `modeldeck model.gguf` ---------------------------------------------------


def test_paths_without_a_command_are_files_to_open(tmp_path: Path) -> None:
    model = tmp_path / "a.gguf"
    model.write_bytes(b"GGUF")
    commands = {"import", "search", "list"}
    assert launcher.split_open_paths([str(model)], commands=commands) == ([], [model])
    assert launcher.split_open_paths(
        ["--endpoint", "http://127.0.0.1:9", str(model)], commands=commands
    ) == (["--endpoint", "http://127.0.0.1:9"], [model])
    # After a command, every argument is the command's.
    assert launcher.split_open_paths(["import", str(model)], commands=commands) == (
        ["import", str(model)],
        [],
    )
    assert launcher.split_open_paths(["search", "llama"], commands=commands) == (
        ["search", "llama"],
        [],
    )


def test_the_launcher_hands_files_to_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.application

    model = tmp_path / "a.gguf"
    model.write_bytes(b"GGUF")
    calls: list[dict[str, object]] = []

    def fake_run_gui(**options: object) -> int:
        calls.append(options)
        return 0

    monkeypatch.setattr(ui.application, "run_gui", fake_run_gui)
    assert launcher.main([str(model)]) == 0
    assert calls == [{"endpoint_override": None, "open_paths": [model]}]
    assert "search" in launcher.command_names(app.cli.build_parser())
