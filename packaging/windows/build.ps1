# Builds ModelDeck for Windows: the PyInstaller bundle, then the Inno Setup installer.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#
# Output: build\dist\modeldeck\ (the bundle; check it with
# `build\dist\modeldeck\modeldeck.exe --self-test > selftest.txt; type selftest.txt` — the
# app has no console of its own) and build\out\ModelDeck-VERSION-setup.exe.
#
# Environment:
#   PYTHON            the build interpreter with ModelDeck and the packaging extra
#                     (default .venv\Scripts\python.exe). For CUDA, build llama-cpp-python with
#                     CMAKE_ARGS="-DGGML_CUDA=on" first (packaging\README.md).
#   MODELDECK_BUNDLE  base (default) or full (adds torch + diffusers)
#   ISCC              Inno Setup's compiler (default: ISCC.exe on PATH, then Inno Setup 6's
#                     install folder). Get it from https://jrsoftware.org/isinfo.php or
#                     `winget install JRSoftware.InnoSetup`.
#   SIGNTOOL_ARGS     when set, signtool.exe sign $SIGNTOOL_ARGS runs on modeldeck.exe and on
#                     the installer (e.g. "/a /fd SHA256 /tr http://timestamp.digicert.com /td SHA256").
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

function Fail($message) { Write-Error "packaging/windows/build.ps1: $message"; exit 1 }

$python = if ($env:PYTHON) { $env:PYTHON } else { ".venv\Scripts\python.exe" }
if (-not (Test-Path $python)) { Fail "no build Python at $python: py -3.11 -m venv .venv; .venv\Scripts\pip install -e .[llm,packaging]" }
& $python -c "import PyInstaller" 2>$null
if ($LASTEXITCODE -ne 0) { Fail "PyInstaller is missing in ${python}: $python -m pip install -e .[llm,packaging]" }
& $python -c "import llama_cpp, gguf" 2>$null
if ($LASTEXITCODE -ne 0) { Fail "the LLM runtime is missing in ${python}: $python -m pip install -e .[llm,packaging]" }
$iscc = $env:ISCC
if (-not $iscc) { $iscc = (Get-Command ISCC.exe -ErrorAction SilentlyContinue).Source }
if (-not $iscc) {
  foreach ($root in @(${env:ProgramFiles(x86)}, $env:ProgramFiles, "$env:LOCALAPPDATA\Programs")) {
    $candidate = Join-Path $root "Inno Setup 6\ISCC.exe"
    if ($root -and (Test-Path $candidate)) { $iscc = $candidate; break }
  }
}
if (-not $iscc) { Fail "Inno Setup 6 (ISCC.exe) is missing: winget install JRSoftware.InnoSetup, or set ISCC" }
if ($env:SIGNTOOL_ARGS -and -not (Get-Command signtool.exe -ErrorAction SilentlyContinue)) {
  Fail "signtool.exe is missing (Windows SDK) but SIGNTOOL_ARGS is set"
}

$version = (& $python -c "import app; print(app.__version__)").Trim()
New-Item -ItemType Directory -Force build\out | Out-Null

Write-Host "== icons"
& $python packaging\make_icons.py build\icons
if ($LASTEXITCODE -ne 0) { Fail "the icons could not be made" }

Write-Host "== bundle (PyInstaller)"
$env:MODELDECK_ICONS = (Resolve-Path build\icons).Path
& $python -m PyInstaller --noconfirm --log-level WARN --distpath build\dist --workpath build\pyinstaller packaging\modeldeck.spec
if ($LASTEXITCODE -ne 0) { Fail "PyInstaller failed" }
if ($env:SIGNTOOL_ARGS) { & signtool.exe sign $env:SIGNTOOL_ARGS.Split(" ") build\dist\modeldeck\modeldeck.exe }

Write-Host "== installer (Inno Setup)"
& $iscc "/DAppVersion=$version" packaging\windows\modeldeck.iss
if ($LASTEXITCODE -ne 0) { Fail "Inno Setup failed" }
$installer = "build\out\ModelDeck-$version-setup.exe"
if ($env:SIGNTOOL_ARGS) { & signtool.exe sign $env:SIGNTOOL_ARGS.Split(" ") $installer }
Write-Host "   $installer"
