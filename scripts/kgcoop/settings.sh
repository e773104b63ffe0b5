# KgCoOp's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (CFG=... overrides the config; W=... the weight of the knowledge-guidance term, published 8.0).
METHOD=KgCoOp
[ -n "${W:-}" ] && METHOD_OPTS="TRAINER.KGCOOP.W $W"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
