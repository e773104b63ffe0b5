# ProGrad's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (upstream's: RN50, 4 shots for base-to-new and cross-dataset: SHOTS=4). CFG=... overrides
# the config, LAMBDA=... LOSS.LAMBDA (published 1.0; the paper's 8- and 16-shot
# Flowers102, DTD and EuroSAT use 0.8).
METHOD=ProGrad
[ -n "${LAMBDA:-}" ] && METHOD_OPTS="LOSS.LAMBDA $LAMBDA"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
