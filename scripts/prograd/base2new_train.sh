#!/bin/bash
# ProGrad, base-to-new generalisation, step 1: train on the base classes (SHOTS, upstream 4).
# Usage: DATA=/path/to/datasets bash scripts/prograd/base2new_train.sh DATASET SEED
source "$(dirname "$0")/settings.sh"
base2new_train "$@"
