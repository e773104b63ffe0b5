# MaPLe's settings for the protocol scripts in this folder (CFG=... overrides the config).
# Published: 2 context tokens, depth 9, 5 epochs, batch 4; cross-dataset: depth 3, 2 epochs.
TRAINER=MaPLe
base2new_cfg() { echo "${CFG:-vit_b16_c2_ep5_batch4_2ctx}"; }
XD_CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}"
fewshot_cfg() { echo "${CFG:-vit_b16_c2_ep5_batch4_2ctx}"; }
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
