#!/bin/bash
# ProGrad, base-to-new generalisation, step 2: evaluate the step-1 model on the new classes.
# Usage: DATA=/path/to/datasets bash scripts/prograd/base2new_test.sh DATASET SEED
source "$(dirname "$0")/settings.sh"
base2new_test "$@"
