#!/usr/bin/env bash
# Builds ModelDeck for Linux: the PyInstaller bundle, then the formats asked for.
#
#   packaging/linux/build.sh [bundle] [appdir] [tarball] [deb] [appimage]   (default: all five)
#
# Everything lands in build/: build/dist/modeldeck/ (the one-folder bundle; run
# build/dist/modeldeck/modeldeck --self-test), build/ModelDeck.AppDir/, and
# build/out/ModelDeck-VERSION-x86_64.{tar.gz,deb,AppImage}.
#
# Environment:
#   PYTHON             the build interpreter, with ModelDeck and the packaging extra installed
#                      (default .venv/bin/python; scripts/bootstrap llm,packaging makes it)
#   MODELDECK_BUNDLE   base (default: the app + llama.cpp) or full (+ torch and diffusers)
#   APPIMAGETOOL       appimagetool to use (default: `appimagetool` on PATH)
#   DEB_MAINTAINER     the .deb's Maintainer field
# Each tool a target needs is checked before anything is built; a missing one stops the
# script with what to install.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "packaging/linux/build.sh: $*" >&2; exit 1; }

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(bundle appdir tarball deb appimage)
want() { local t; for t in "${targets[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }
for target in "${targets[@]}"; do
  case "$target" in
    bundle | appdir | tarball | deb | appimage) ;;
    *) fail "unknown target '$target' (bundle, appdir, tarball, deb, appimage)" ;;
  esac
done
# Every format is made from the bundle, the AppImage and the .deb from the AppDir's layout.
want appimage && targets+=(appdir)

# -- the tools, before any work --------------------------------------------------------------
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || fail "no build Python at $python: run scripts/bootstrap llm,packaging (or set PYTHON)"
"$python" -c 'import PyInstaller' 2>/dev/null ||
  fail "PyInstaller is missing in $python: $python -m pip install -e '.[llm,packaging]'"
"$python" -c 'import llama_cpp, gguf' 2>/dev/null ||
  fail "the LLM runtime is missing in $python: $python -m pip install -e '.[llm,packaging]'"
if want tarball; then command -v tar >/dev/null || fail "tar is missing"; fi
if want deb; then
  command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing (apt-get install dpkg)"
  command -v objdump >/dev/null || fail "objdump is missing (apt-get install binutils)"
fi
if want appimage; then
  appimagetool="${APPIMAGETOOL:-$(command -v appimagetool || true)}"
  if [[ -z "$appimagetool" || ! -x "$appimagetool" ]]; then
    cat >&2 <<'EOF'
packaging/linux/build.sh: appimagetool is missing, so no AppImage can be made.
  appimagetool is not packaged for Debian/Ubuntu or PyPI. On a machine with internet:
    curl -Lo ~/.local/bin/appimagetool \
      https://github.com/AppImage/appimagetool/releases/download/continuous/appimagetool-x86_64.AppImage
    chmod +x ~/.local/bin/appimagetool
  (it needs FUSE to run, or set APPIMAGE_EXTRACT_AND_RUN=1), then run this again, or point
  APPIMAGETOOL at it. The other formats build without it:
    packaging/linux/build.sh bundle appdir tarball deb
EOF
    exit 1
  fi
fi

version="$("$python" -c 'import app; print(app.__version__)')"
arch="$(uname -m)"
deb_arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
name="ModelDeck-${version}-${arch}"
mkdir -p build/out

# -- bundle: icons, then PyInstaller -----------------------------------------------------------
echo "== icons"
QT_QPA_PLATFORM=offscreen "$python" packaging/make_icons.py build/icons
echo "== bundle (PyInstaller, ${MODELDECK_BUNDLE:-base})"
MODELDECK_ICONS="$PWD/build/icons" "$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath build/dist --workpath build/pyinstaller packaging/modeldeck.spec
bundle=build/dist/modeldeck
echo "   $(du -sh "$bundle" | cut -f1) in $bundle"

# -- AppDir: the bundle in the layout both the AppImage and the .deb use -----------------------
# usr/lib/modeldeck/ holds the bundle; usr/bin/modeldeck links to it; the .desktop file, the
# icons and the MIME types sit where the freedesktop specs look.
install_tree() {
  local root="$1" prefix="$2"
  rm -rf "$root"
  mkdir -p "$root$prefix/lib" "$root$prefix/bin" "$root$prefix/share/applications" \
    "$root$prefix/share/mime/packages" "$root$prefix/share/icons/hicolor/scalable/apps"
  cp -a "$bundle" "$root$prefix/lib/modeldeck"
  ln -s ../lib/modeldeck/modeldeck "$root$prefix/bin/modeldeck"
  cp resources/modeldeck.desktop "$root$prefix/share/applications/modeldeck.desktop"
  cp resources/mime/modeldeck.xml "$root$prefix/share/mime/packages/modeldeck.xml"
  cp resources/icons/modeldeck.svg "$root$prefix/share/icons/hicolor/scalable/apps/"
  local size
  for size in $("$python" -c 'import sys; sys.path.insert(0, "packaging"); import modeldeck_bundle as b; print(*b.LINUX_ICON_SIZES)'); do
    mkdir -p "$root$prefix/share/icons/hicolor/${size}x${size}/apps"
    cp "build/icons/modeldeck-$size.png" "$root$prefix/share/icons/hicolor/${size}x${size}/apps/modeldeck.png"
  done
}

if want appdir; then
  echo "== AppDir"
  appdir=build/ModelDeck.AppDir
  install_tree "$appdir" /usr
  cp resources/modeldeck.desktop "$appdir/modeldeck.desktop"
  cp build/icons/modeldeck-256.png "$appdir/modeldeck.png"
  ln -s modeldeck.png "$appdir/.DirIcon"
  cat > "$appdir/AppRun" <<'EOF'
#!/bin/sh
# The AppImage's entry: run the bundle inside the mounted image.
here="$(dirname "$(readlink -f "$0")")"
exec "$here/usr/lib/modeldeck/modeldeck" "$@"
EOF
  chmod +x "$appdir/AppRun"
  "$appdir/AppRun" --version >/dev/null || fail "the AppDir's AppRun does not start"
  echo "   $appdir"
fi

if want tarball; then
  echo "== tarball"
  tar -C build/dist -czf "build/out/$name.tar.gz" --transform "s,^modeldeck,$name," modeldeck
  echo "   build/out/$name.tar.gz ($(du -h "build/out/$name.tar.gz" | cut -f1))"
fi

if want deb; then
  echo "== .deb"
  root=build/deb
  install_tree "$root" /usr
  # /usr/lib/modeldeck is the bundle; Qt's xcb plugin needs the Depends from the system.
  mkdir -p "$root/DEBIAN"
  # The newest glibc symbol any bundled binary needs: the bundle runs where that glibc is.
  glibc="$(find "$bundle" -type f \( -name '*.so*' -o -name modeldeck \) -exec objdump -T {} + 2>/dev/null |
    grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sort -uV | tail -1 | cut -d_ -f2)"
  cat > "$root/DEBIAN/control" <<EOF
Package: modeldeck
Version: $version
Architecture: $deb_arch
Maintainer: ${DEB_MAINTAINER:-ModelDeck maintainers <maintainers@modeldeck.invalid>}
Section: science
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Depends: libc6 (>= ${glibc}), libegl1, libgl1, libfontconfig1, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0, libdbus-1-3
Description: Find open models, read their card and license, and run them locally
 ModelDeck finds open models on a hub, shows their card and license, downloads them into
 the shared Hugging Face cache and runs GGUF models with llama.cpp, on your own machine.
EOF
  # The desktop and MIME databases update through dpkg triggers: no maintainer scripts.
  # zstd: a third of xz's time for 20% more bytes (dpkg reads it since Debian 12 / Ubuntu 21.10).
  dpkg-deb --root-owner-group -Zzstd -z12 --build "$root" "build/out/$name.deb" >/dev/null
  echo "   build/out/$name.deb ($(du -h "build/out/$name.deb" | cut -f1))"
fi

if want appimage; then
  echo "== AppImage"
  ARCH="$arch" "$appimagetool" --no-appstream build/ModelDeck.AppDir "build/out/$name.AppImage"
  echo "   build/out/$name.AppImage ($(du -h "build/out/$name.AppImage" | cut -f1))"
fi
