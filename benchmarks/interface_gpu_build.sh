#!/usr/bin/env bash
# How the interface v1.0 candidates were relaxed on a lent GPU host (one NVIDIA H200, 16 CPU
# cores, no network): the carried wheels (.whl/, pip download for cp312) are installed beside
# the host's own torch, the checkout is put on PYTHONPATH as the package dismai_data, then
#   1. benchmarks/interface_gpu.py checks the GPU engine against the CPU one and sizes the batch;
#   2. python -m dismai_data.builders.interface relax N relaxes the references and candidates
#      0..N-1 into the build's checkpoint folder in WORKERS processes sharing the GPU, starting
#      no new chunk once the time left runs short;
#   3. the checkpoint folder is packed into $OUT (work.tar.NN, 15 MB pieces).
# Here: cat work.tar.* | tar -x -C "$DISMAI_HOME", then `dismai build interface --set
# n_candidates=N` assembles the dataset from those shards (it relaxes only what is missing).
# Usage: N=3000 WORKERS=10 LIMIT=570 bash benchmarks/interface_gpu_build.sh
set -u
SECONDS=0
N=${N:-3000}; WORKERS=${WORKERS:-10}; LIMIT=${LIMIT:-570}; PY=${PY:-python3}
OUT=${OUT:-/tmp/interface-gpu-out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  rm -rf /tmp/site; $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
rm -rf /tmp/pkg; mkdir -p /tmp/pkg/dismai_data; cp -r dismai_data/. /tmp/pkg/dismai_data/
for d in builders models evaluation cards; do ln -s "$PWD/$d" "/tmp/pkg/dismai_data/$d"; done
export PYTHONPATH=/tmp/pkg:/tmp/site DISMAI_HOME=${DISMAI_HOME:-/tmp/dhome} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)'; \
  $PY -c "import torch, numpy, pyarrow, datasets, matgl, pymatgen.core; print('torch', torch.__version__, 'numpy', numpy.__version__, 'pyarrow', pyarrow.__version__)"; } 2>&1 | tee "$OUT/machine.txt"
# a resumed run: the shards made so far (carried as .gpuwork/work) go into the work folder first
if [ -d .gpuwork/work ]; then mkdir -p "$DISMAI_HOME" && cp -r .gpuwork/work "$DISMAI_HOME/"; fi
if [ -z "${BATCH:-}" ]; then
  $PY "$PWD/benchmarks/interface_gpu.py" --n 4 --batch 32 --workers "$WORKERS" 2>&1 | tee "$OUT/check.log"
fi
B=$(grep -o '^batch_size=[0-9]*' "$OUT/check.log" | tail -1 | cut -d= -f2); B=${B:-${BATCH:-24}}
LEFT=$((LIMIT - SECONDS))
echo "batch_size $B, $LEFT s left at $(date -u +%FT%TZ)" | tee -a "$OUT/relax.log"
# from /tmp: run in the checkout, python -m would import the checkout's dismai_data/ (without the
# folders installed under it) before the one on PYTHONPATH
(cd /tmp && timeout $((LEFT - 40)) $PY -m dismai_data.builders.interface relax "$N" --workers "$WORKERS" \
  --deadline-s $((LEFT - 120)) --chunk "${CHUNK:-$((4 * B))}" --shard-size "${SHARD:-16}" --set batch_size="$B") 2>&1 | tee -a "$OUT/relax.log"
tar -C "$DISMAI_HOME" -cf /tmp/work.tar work && split -b 15M -d /tmp/work.tar "$OUT/work.tar."
ls -la "$OUT"; echo "total ${SECONDS} s"
