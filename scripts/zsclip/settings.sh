# Zero-shot CLIP: the backbone and input settings of CoOp's configs (CFG=vit_b16 by default,
# in runs/grid.py; ZS_TRAINER=ZeroshotCLIP2 for the template ensemble).
METHOD=ZeroshotCLIP
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
