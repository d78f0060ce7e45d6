#!/usr/bin/env bash
# Builds ModelDeck for macOS: ModelDeck.app (PyInstaller) in a .dmg; signs and notarizes when
# asked to.
#
#   packaging/macos/build.sh
#
# Output: build/dist/ModelDeck.app and build/out/ModelDeck-VERSION-ARCH.dmg. Check the app
# with: build/dist/ModelDeck.app/Contents/MacOS/modeldeck --self-test
#
# Environment:
#   PYTHON                the build interpreter with ModelDeck and the packaging extra
#                         (default .venv/bin/python). For Metal, build llama-cpp-python with
#                         CMAKE_ARGS="-DGGML_METAL=on" first (packaging/README.md).
#   MODELDECK_BUNDLE      base (default) or full (adds torch + diffusers; MPS on Apple silicon)
#   MACOS_SIGN_IDENTITY   "Developer ID Application: NAME (TEAMID)": sign the app and the dmg
#                         with the hardened runtime (packaging/macos/entitlements.plist).
#                         Unset: an unsigned build, which Gatekeeper makes users right-click > Open.
#   MACOS_NOTARY_PROFILE  a keychain profile made with `xcrun notarytool store-credentials`:
#                         submit the signed dmg to Apple's notary service, wait, and staple it.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "packaging/macos/build.sh: $*" >&2; exit 1; }

[[ "$(uname -s)" == Darwin ]] || fail "macOS builds run on macOS (this is $(uname -s))"
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || fail "no build Python at $python: python3 -m venv .venv && .venv/bin/pip install -e '.[llm,packaging]'"
"$python" -c 'import PyInstaller' 2>/dev/null ||
  fail "PyInstaller is missing in $python: $python -m pip install -e '.[llm,packaging]'"
"$python" -c 'import llama_cpp, gguf' 2>/dev/null ||
  fail "the LLM runtime is missing in $python: $python -m pip install -e '.[llm,packaging]'"
command -v hdiutil >/dev/null || fail "hdiutil is missing (it comes with macOS)"
if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
  command -v codesign >/dev/null || fail "codesign is missing: xcode-select --install"
fi
if [[ -n "${MACOS_NOTARY_PROFILE:-}" ]]; then
  [[ -n "${MACOS_SIGN_IDENTITY:-}" ]] || fail "notarization needs a signed app: set MACOS_SIGN_IDENTITY"
  xcrun --find notarytool >/dev/null 2>&1 || fail "notarytool is missing: install Xcode 13 or newer"
fi

version="$("$python" -c 'import app; print(app.__version__)')"
name="ModelDeck-${version}-$(uname -m)"
mkdir -p build/out

echo "== icons"
"$python" packaging/make_icons.py build/icons
echo "== ModelDeck.app (PyInstaller, ${MODELDECK_BUNDLE:-base})"
# The spec signs every binary when MACOS_SIGN_IDENTITY is set (codesign_identity).
MODELDECK_ICONS="$PWD/build/icons" "$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath build/dist --workpath build/pyinstaller packaging/modeldeck.spec
app=build/dist/ModelDeck.app
"$app/Contents/MacOS/modeldeck" --version >/dev/null || fail "the app does not start"

if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
  echo "== signing"
  codesign --force --deep --timestamp --options runtime \
    --entitlements packaging/macos/entitlements.plist --sign "$MACOS_SIGN_IDENTITY" "$app"
  codesign --verify --strict --verbose=2 "$app"
fi

echo "== dmg"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"  # drag the app onto it to install
dmg="build/out/$name.dmg"
rm -f "$dmg"
hdiutil create -volname "ModelDeck $version" -srcfolder "$stage" -ov -format UDZO "$dmg" >/dev/null
if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
  codesign --timestamp --sign "$MACOS_SIGN_IDENTITY" "$dmg"
fi

if [[ -n "${MACOS_NOTARY_PROFILE:-}" ]]; then
  echo "== notarization (minutes)"
  xcrun notarytool submit "$dmg" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
  spctl --assess --type open --context context:primary-signature --verbose "$dmg"
fi
echo "   $dmg ($(du -h "$dmg" | cut -f1))"
