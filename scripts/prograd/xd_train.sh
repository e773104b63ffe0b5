#!/bin/bash
# ProGrad, cross-dataset / domain generalisation, step 1: train on ImageNet, all classes (SHOTS, upstream 4).
# Usage: DATA=/path/to/datasets bash scripts/prograd/xd_train.sh SEED
source "$(dirname "$0")/settings.sh"
xd_train "$@"
