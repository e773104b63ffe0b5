# MaPLe's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (published: 2 context tokens, depth 9, 5 epochs, batch 4; cross-dataset: depth 3,
# 2 epochs; CFG=... overrides the config).
METHOD=MaPLe
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
