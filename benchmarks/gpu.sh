#!/usr/bin/env bash
# The GPU checks, in one call of under 5 minutes (issue 16), for the first session lent a GPU:
#   1. the CUDA-marked tests (tests/test_cuda.py: batched against serial on the GPU, the GPU against
#      the CPU, bfloat16, a whole run with device=cuda and its verified ledger);
#   2. the population benchmark (benchmarks/population.py) on CUDA at P = 32, 256 and 1024 MLPs of
#      64-128-128-10, float32 (beside the simple stacked loop) and bfloat16, each P as one population
#      (--chunk 1024), as successors per second;
#   3. the CPU figure beside it: the same benchmark on CPU at P = 32.
# Without a GPU it says so, skips 1 and 2, and still runs 3 (a dry run of the script itself).
#     bash benchmarks/gpu.sh            # PYTHON=... to choose the interpreter (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export WANDB_MODE=disabled
status=0
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
  echo "== CUDA tests"
  timeout 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py || status=1
  for dtype in float32 bfloat16; do
    ways=batched; [ "$dtype" = float32 ] && ways=stacked,batched  # the simple stacked loop beside it, as on CPU
    echo "== population benchmark on CUDA, $dtype (successors/s: P over the seconds to train all P)"
    timeout 90 "$PY" benchmarks/population.py --device cuda --populations 32,256,1024 --repeats 3 \
      --ways "$ways" --dtype "$dtype" --chunk 1024 || status=1
  done
else
  echo "gpu.sh: no CUDA GPU here (torch.cuda.is_available() is False): skipping the CUDA tests and the CUDA benchmark"
fi
echo "== the CPU figure: the same benchmark on CPU at P = 32"
timeout 90 "$PY" benchmarks/population.py --device cpu --populations 32 --repeats 1 --ways batched || status=1
exit $status
