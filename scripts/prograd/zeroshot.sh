#!/bin/bash
# ProGrad, zero-shot CLIP with this method's backbone and input settings (SUB: all, base or new).
# Usage: DATA=/path/to/datasets bash scripts/prograd/zeroshot.sh DATASET [SUB]
source "$(dirname "$0")/settings.sh"
zeroshot "$@"
