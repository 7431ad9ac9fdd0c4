#!/bin/sh
# Installs the Debian packages the tests need (cross compilers, newlib, QEMU, Open MPI, Chromium) when some are missing, as root
# or with passwordless sudo; otherwise does nothing (the tests that need a missing tool skip with one line).
PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm openmpi-bin libopenmpi-dev chromium"
command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || exit 0
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"
else exit 0
fi
echo "apt-deps: installing$missing" >&2
$sudo apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
  echo "apt-deps: could not install$missing (the tests that need them will skip)" >&2
exit 0
