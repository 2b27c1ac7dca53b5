#!/usr/bin/env bash
# The GPU measurements of the project in one command, on a machine with an NVIDIA GPU:
# the CUDA tests, then the model benchmark (writing docs/bench/<gpu-name>.json), the batched
# throughput curve, cold/warm start and the pipeline latency on the GPU.
#
#   bash scripts/gpu_check.sh            # from the checkout, with avatarcam and a CUDA torch installed
#
# CI never runs this (it has no GPU); commit the JSON and the printed tables it leaves behind.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA GPU visible to torch (install a CUDA build of torch, check nvidia-smi)")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
name=$(python -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name(0).lower()).strip('-'))")
mkdir -p docs/bench
python -m pytest -q -m cuda tests
python scripts/benchmark.py --device cuda --frames 200 --compile --batch 1,4,16,64 --json "docs/bench/$name.json" \
  | tee "docs/bench/$name.txt"
python scripts/bench_start.py --device cuda --repeat 3 | tee -a "docs/bench/$name.txt"
python scripts/bench_pipeline.py --device cuda --full --delays 0 --seconds 10 | tee -a "docs/bench/$name.txt"
echo "gpu_check: wrote docs/bench/$name.json and docs/bench/$name.txt"
