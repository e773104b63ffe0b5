# E2MIM's settings for the protocol scripts in this folder (CFG=... overrides the config;
# E2MIM_OPTS="TRAINER.E2MIM.KEY VALUE ..." sets method keys for ablations).
TRAINER=E2MIM
base2new_cfg() { echo "${CFG:-vit_b16_ep50_ctxv1}"; }
XD_CFG="${CFG:-vit_b16_ep50_ctxv1_imagenet}"
fewshot_cfg() { echo "${CFG:-vit_b16_ep50_ctxv1}"; }
METHOD_OPTS="${E2MIM_OPTS:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
