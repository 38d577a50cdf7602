#!/usr/bin/env bash
# How the DiffCSP baselines were trained on a lent GPU host (one NVIDIA H200, 16 CPU cores, no
# network): the chemeleon-dng wheel (.whl/) goes beside the host's own torch and torch-geometric,
# the checkout is put on PYTHONPATH as the package dismai_data, and every job packed by
# `benchmarks/diffcsp_gpu.py prepare` (.gpuwork/diffcsp/*.pt) trains in its own process for
# TRAIN_S seconds, then samples until DEADLINE_S; each job's folder comes back as $OUT/<job>.tar.
# Here: `.venv/bin/python benchmarks/diffcsp_gpu.py collect --from <folder of the tars>`.
# Usage: TRAIN_S=270 DEADLINE_S=440 HARD_S=500 bash benchmarks/diffcsp_gpu.sh
set -u
SECONDS=0
PY=${PY:-python3}; OUT=${OUT:-/tmp/diffcsp-gpu-out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  rm -rf /tmp/site; $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
rm -rf /tmp/pkg; mkdir -p /tmp/pkg/dismai_data; cp -r dismai_data/. /tmp/pkg/dismai_data/
for d in builders models evaluation cards; do ln -s "$PWD/$d" "/tmp/pkg/dismai_data/$d"; done
export PYTHONPATH=/tmp/pkg:/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)'; \
  $PY -c "import torch, torch_geometric, huggingface_hub, chemeleon_dng; print('torch', torch.__version__, 'pyg', torch_geometric.__version__, 'hub', huggingface_hub.__version__)"; } 2>&1 | tee "$OUT/machine.txt"
JOBS=$PWD/.gpuwork/diffcsp
# from /tmp: in the checkout, python would import the checkout's dismai_data/ (without the folders
# installed under it) before the one on PYTHONPATH
(cd /tmp && $PY "$OLDPWD/benchmarks/diffcsp_gpu.py" run --jobs "$JOBS" --out "$OUT" --train-s "${TRAIN_S:-270}" \
  --deadline-s "${DEADLINE_S:-440}" --hard-s "${HARD_S:-500}" --chunk-atoms "${CHUNK:-26000}") 2>&1 | tee -a "$OUT/machine.txt"
ls -la "$OUT"; echo "total ${SECONDS} s"
