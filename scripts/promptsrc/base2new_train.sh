#!/bin/bash
# PromptSRC, base-to-new generalisation, step 1: train on the base classes (16 shots).
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/base2new_train.sh DATASET SEED
source "$(dirname "$0")/settings.sh"
base2new_train "$@"
