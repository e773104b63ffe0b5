#!/bin/bash
# MaPLe, zero-shot CLIP with this method's backbone and input settings (SUB: all, base or new).
# Usage: DATA=/path/to/datasets bash scripts/maple/zeroshot.sh DATASET [SUB]
source "$(dirname "$0")/settings.sh"
zeroshot "$@"
