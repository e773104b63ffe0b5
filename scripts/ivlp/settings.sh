# IVLP's settings for the protocol scripts in this folder: its configs are in runs/grid.py
# (PromptSRC's IVLP baseline: 4+4 context tokens, depth 9, 20 epochs, batch 4; CFG=...
# overrides the config).
METHOD=IVLP
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
