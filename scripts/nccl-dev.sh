#!/bin/sh
# Fetches NCCL's header and library (the pip wheel nvidia-nccl-cu13, from the local package index) into build/nccl,
# for `kiln compile --target cuda --train --distributed nccl` where no NCCL is installed: then
# KILN_NCCL_HOME=build/nccl. Needs pip and unzip; prints the folder.
set -eu
cd "$(dirname "$0")/.."
out=build/nccl
if [ -f "$out/include/nccl.h" ] && [ -f "$out/lib/libnccl.so.2" ]; then echo "$PWD/$out"; exit 0; fi
command -v pip >/dev/null 2>&1 || { echo "nccl-dev.sh: pip is not installed" >&2; exit 1; }
command -v unzip >/dev/null 2>&1 || { echo "nccl-dev.sh: unzip is not installed" >&2; exit 1; }
mkdir -p "$out/wheel"
pip download --quiet --no-deps nvidia-nccl-cu13 -d "$out/wheel" ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} \
  ${PIP_INDEX_URL:---index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple} >&2
wheel=$(ls "$out"/wheel/nvidia_nccl_cu13-*.whl | tail -n 1)
rm -rf "$out/unpacked"
unzip -q -o "$wheel" 'nvidia/nccl/include/*' 'nvidia/nccl/lib/libnccl.so.2' -d "$out/unpacked"
rm -rf "$out/include" "$out/lib"
mv "$out/unpacked/nvidia/nccl/include" "$out/include"
mkdir -p "$out/lib"
mv "$out/unpacked/nvidia/nccl/lib/libnccl.so.2" "$out/lib/"
ln -sf libnccl.so.2 "$out/lib/libnccl.so"
rm -rf "$out/unpacked" "$out/wheel"
echo "$PWD/$out"
