# KgCoOp's settings for the protocol scripts in this folder (CFG=... overrides the config;
# W=... the weight of the knowledge-guidance term, published 8.0).
TRAINER=KgCoOp
base2new_cfg() { echo "${CFG:-vit_b16_ep100_ctxv1}"; }
XD_CFG="${CFG:-vit_b16_ep100_ctxv1}"
fewshot_cfg() { echo "${CFG:-vit_b16_ep100_ctxv1}"; }
METHOD_OPTS="TRAINER.KGCOOP.W ${W:-8.0}"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
