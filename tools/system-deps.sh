#!/usr/bin/env bash
# Debian packages the host-adapter tests need, on Debian 12 (bookworm), x86-64.
#
#   tools/system-deps.sh [--check|--list] [GROUP...]
#
# Groups (default: all of them):
#   x11     Xvfb + xauth, for xvfb-run. Screenshots need nothing more:
#           PIL.ImageGrab.grab(bbox=..., xdisplay=os.environ["DISPLAY"])
#           (Pillow's wheels carry their own libxcb).
#   tk      libtk8.6: the pyenv Pythons' _tkinter links Debian's libtk8.6 and
#           libtcl8.6 (threaded Tcl 8.6.13).
#   qt      runtime libraries the PySide6-Essentials / PyQt6 / PyQt5 wheels
#           load. QT_QPA_PLATFORM=offscreen needs only libglib2.0-0 libgl1
#           libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 (found by trial
#           on a debootstrap'ed minbase bookworm); the libxcb-* rest is for
#           the xcb platform under Xvfb (Qt >= 6.5 refuses xcb without
#           libxcb-cursor0).
#   pygame  libglib2.0-0 (mixer) and libx11-6 (scrap); its wheels bundle
#           SDL2 itself, and the tests use SDL_VIDEODRIVER=dummy.
#   gtk     GTK 3 and GTK 4 typelibs, plus what building PyGObject 3.50.x
#           and pycairo from source needs (neither has a Linux wheel; the
#           pyenv Pythons carry their own headers).
#   webkit  WebKitGTK 4.0 (webkit2gtk-4.0 ABI), which the libwebview.so
#           inside the `webviewpy` wheel links; webview-python loads that
#           library (see requirements/hosts.txt). Also the WebKit2 4.0
#           typelib, for driving WebKitGTK through PyGObject.
#
# Idempotent and quick when everything is present: it asks dpkg-query first
# and only runs `apt-get update` + `apt-get install` for what is missing.
#   --check  exit 1 (and name them) if any packages are missing; install nothing
#   --list   print the package names of the chosen groups and exit
#
# Measured (all groups): on this project's CI image, where only xvfb and the
# gtk/webkit/xcb extras are missing, 114 debs / 83 MB / ~30 s; on a minbase
# debootstrap of bookworm, 382 debs / 266 MB / ~70 s; when all present, <0.1 s.
set -euo pipefail

declare -A GROUP_PKGS=(
    [x11]="xvfb xauth"
    [tk]="libtk8.6 libtcl8.6"
    [qt]="libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
          fonts-dejavu-core
          libx11-6 libx11-xcb1 libxext6 libxkbcommon-x11-0 libxcb1 libxcb-cursor0
          libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
          libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0
          libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1"
    [pygame]="libglib2.0-0 libx11-6"
    [gtk]="gir1.2-gtk-3.0 gir1.2-gtk-4.0 libgirepository1.0-dev libcairo2-dev
           pkg-config gcc libc6-dev"
    [webkit]="libwebkit2gtk-4.0-37 gir1.2-webkit2-4.0"
)
ALL_GROUPS=(x11 tk qt pygame gtk webkit)

mode=install
groups=()
for arg in "$@"; do
    case "$arg" in
        --check) mode=check ;;
        --list) mode=list ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        all) groups+=("${ALL_GROUPS[@]}") ;;
        *)
            if [[ -z "${GROUP_PKGS[$arg]+set}" ]]; then
                echo "system-deps: unknown group '$arg' (groups: ${ALL_GROUPS[*]})" >&2
                exit 2
            fi
            groups+=("$arg") ;;
    esac
done
((${#groups[@]})) || groups=("${ALL_GROUPS[@]}")

pkgs=()
for g in "${groups[@]}"; do
    # shellcheck disable=SC2206  # word splitting of the list is intended
    pkgs+=(${GROUP_PKGS[$g]})
done
# de-duplicate, keep order
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk '!seen[$0]++')

if [[ $mode == list ]]; then
    printf '%s\n' "${pkgs[@]}"
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not a Debian-like system (no dpkg-query/apt-get); install by hand:" >&2
    echo "  ${pkgs[*]}" >&2
    exit 1
fi

# One dpkg-query for all; a package dpkg has never heard of is simply absent.
declare -A installed=()
while read -r name status; do
    [[ $status == installed ]] && installed[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null || true)
missing=()
for p in "${pkgs[@]}"; do
    [[ -n "${installed[$p]+set}" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "system-deps: all ${#pkgs[@]} packages present (${groups[*]})"
    exit 0
fi
if [[ $mode == check ]]; then
    echo "system-deps: missing: ${missing[*]}" >&2
    exit 1
fi

SUDO=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "system-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "system-deps: installing ${missing[*]}"
# Wait for a concurrent apt/dpkg instead of failing on its lock.
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}"
echo "system-deps: done"
