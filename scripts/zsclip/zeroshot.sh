#!/bin/bash
# Zero-shot CLIP on DATASET (SUB: all, base or new; default all).
# Usage: DATA=/path/to/datasets bash scripts/zsclip/zeroshot.sh DATASET [SUB]
source "$(dirname "$0")/settings.sh"
zeroshot "$@"
