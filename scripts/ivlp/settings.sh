# IVLP's settings for the protocol scripts in this folder (CFG=... overrides the config).
# PromptSRC's IVLP baseline: 4+4 context tokens, depth 9, 20 epochs, batch 4.
TRAINER=IVLP
base2new_cfg() { echo "${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"; }
XD_CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"
fewshot_cfg() { echo "${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"; }
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
