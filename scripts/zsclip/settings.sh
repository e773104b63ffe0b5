# Zero-shot CLIP: the backbone and input settings of CoOp's configs (CFG=vit_b16 by default;
# ZS_TRAINER=ZeroshotCLIP2 for the template ensemble).
TRAINER=ZeroshotCLIP
CONFIG_DIR=CoOp
base2new_cfg() { echo "${CFG:-vit_b16}"; }
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
