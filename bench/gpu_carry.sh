#!/usr/bin/env bash
# Prepares what bench/gpu_smoke.py needs on a bare CUDA machine (torch, torchvision, transformers and
# accelerate there already; no network, no PyAV): wheels for Python 3.12 in .whl/ (git-ignored), the
# two large ones (ctranslate2, PyAV) stripped and packed with xz to fit a 64 MiB carry. Then, on the
# card: `bash bench/gpu_device.sh` with .whl carried (docs/GPU.md, "Smoke run").
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/python -m pip"
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64)
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d .whl \
  "diffusers==$(version diffusers)" "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" \
  "pydantic-settings==$(version pydantic-settings)" python-dotenv annotated-types typing-inspection importlib-metadata \
  "faster-whisper==$(version faster-whisper)" "huggingface-hub==$(version huggingface-hub)" "safetensors==$(version safetensors)" \
  "ctranslate2==$(version ctranslate2)" "av==$(version av)"
heavy=$(mktemp -d)
for wheel in .whl/av-*.whl .whl/ctranslate2-*.whl; do unzip -q -o "$wheel" -d "$heavy" && rm "$wheel"; done
find "$heavy" -name '*.so*' -path '*ctranslate2*' -exec strip --strip-unneeded {} +
tar -C "$heavy" -cf - . | xz -9 -T2 > .whl/heavy.tar.xz
rm -rf "$heavy"
du -sh .whl
