#!/usr/bin/env bash
# The README's first command: installs what is missing, generates a small image
# dataset and trains on it through train.py (CoOp's command line), then evaluates.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
stamp=$(date +%Y%m%d-%H%M%S)
out=output/demo/toy/run-$stamp
python3 tools/train_toy.py --root data --seed 1 --trainer ToyLinear \
    --dataset-config-file configs/toy/toy_colours.yaml \
    --config-file configs/toy/toy_linear.yaml \
    --output-dir "$out" OPTIM.MAX_EPOCH 5
echo
echo "Run folder: $out (log.txt, checkpoints, tensorboard/)"
