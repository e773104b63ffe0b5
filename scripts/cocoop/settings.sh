# CoCoOp's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (CFG=... overrides the config).
METHOD=CoCoOp
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
