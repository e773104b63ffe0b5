#!/bin/bash
# ProGrad, few-shot learning on all classes (SHOTS: 1, 2, 4, 8 or 16).
# Usage: DATA=/path/to/datasets bash scripts/prograd/fewshot.sh DATASET SEED SHOTS
source "$(dirname "$0")/settings.sh"
fewshot "$@"
