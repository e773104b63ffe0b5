#!/bin/bash
# Zero-shot CLIP in the base-to-new protocol: base and new classes of DATASET, written
# where the trained methods' base-to-new results go (for parse_test_res.py --base2new).
# Usage: DATA=/path/to/datasets bash scripts/zsclip/base2new.sh DATASET SEED
source "$(dirname "$0")/settings.sh"
base2new_zeroshot "$@"
