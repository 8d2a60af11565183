#!/usr/bin/env bash
# Issue 21's one device check, run on the card with .whl carried (made by bench/gpu_carry.sh): the
# carried wheels into /tmp/site, then the CUDA smoke; its report and log under $OUT.
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, torchvision, transformers, huggingface_hub; print(sys.version.split()[0], 'torch', torch.__version__, 'tf', transformers.__version__, 'hub', huggingface_hub.__version__)"
mkdir -p /tmp/site && tar -C /tmp/site -xJf .whl/heavy.tar.xz || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  $(ls .whl/*.whl | grep -v huggingface_hub) || exit 3
# the card's own huggingface-hub unless it is older than diffusers needs
python3 -c "import huggingface_hub as h, sys; from packaging.version import Version as V; sys.exit(V(h.__version__) >= V('1.32'))" \
  && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/huggingface_hub-*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
timeout -k 10 "${SMOKE_TIMEOUT:-400}" python3 bench/gpu_smoke.py --device cuda --out "$OUT/gpu_smoke.json" 2>&1 \
  | grep -v "Writing model\|Loading weights" | tee "$OUT/smoke.log"
echo "smoke exit ${PIPESTATUS[0]}"
