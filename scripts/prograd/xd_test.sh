#!/bin/bash
# ProGrad, cross-dataset / domain generalisation, step 2: evaluate the ImageNet model on DATASET
# (another benchmark, or imagenetv2 / imagenet_sketch / imagenet_a / imagenet_r).
# Usage: DATA=/path/to/datasets bash scripts/prograd/xd_test.sh DATASET SEED
source "$(dirname "$0")/settings.sh"
xd_test "$@"
