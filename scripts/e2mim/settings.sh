# E2MIM's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (CFG=... overrides the config; E2MIM_OPTS="TRAINER.E2MIM.KEY VALUE ..." sets method keys
# for ablations).
METHOD=E2MIM
METHOD_OPTS="${E2MIM_OPTS:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
