#!/usr/bin/env bash
# The training benchmark in fp16 and AMP on a ViT-B/16-shaped CLIP, for a machine
# with a CUDA GPU: one prepared script, a few minutes.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Prints ms/image per method for each precision and writes OUT_DIR/train_<prec>.json
# (default output/benchmarks/gpu). Packages missing on the machine (yacs, ftfy on
# some images) can be brought as wheels in .whl/: they are installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-output/benchmarks/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
missing=$("$python" - <<'PY'
import importlib.util
need = ["torch", "torchvision", "yacs", "tabulate", "tqdm", "ftfy", "regex", "PIL", "numpy"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then
    echo "gpu_check: missing Python packages: $missing (pip install them, or put their wheels in .whl/)" >&2
    exit 2
fi
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch; this check is for a GPU machine" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

for prec in fp16 amp; do
    echo "=== ViT-B/16-shaped CLIP, PREC $prec ==="
    timeout 140 "$python" -m benchmarks.train_speed --backbones ViT-B/16 --device cuda \
        --prec "$prec" --reps 3 --json "$out/train_$prec.json"
done
