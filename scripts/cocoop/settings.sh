# CoCoOp's settings for the protocol scripts in this folder (CFG=... overrides the config).
TRAINER=CoCoOp
base2new_cfg() { echo "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"; }
XD_CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"
fewshot_cfg() { echo "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}"; }
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
