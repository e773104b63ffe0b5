# CoOp's settings for the protocol scripts in this folder (CFG=... overrides the config).
TRAINER=CoOp
# Base-to-new as in CoCoOp's comparison: "a photo of a" context, 200 epochs (50 on ImageNet).
base2new_cfg() { if [ "$1" = imagenet ]; then echo "${CFG:-vit_b16_ep50_ctxv1}"; else echo "${CFG:-vit_b16_ctxv1}"; fi; }
XD_CFG="${CFG:-vit_b16_ep50_ctxv1}"
# Few-shot as in CoOp's paper: 50 epochs for 1 shot, 100 for 2 and 4, 200 for 8 and 16.
fewshot_cfg() { case "$1" in 1) echo "${CFG:-vit_b16_ep50}" ;; 2|4) echo "${CFG:-vit_b16_ep100}" ;; *) echo "${CFG:-vit_b16}" ;; esac; }
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
