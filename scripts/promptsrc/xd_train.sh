#!/bin/bash
# PromptSRC, cross-dataset / domain generalisation, step 1: train on ImageNet, all classes, 16 shots.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/xd_train.sh SEED
source "$(dirname "$0")/settings.sh"
xd_train "$@"
