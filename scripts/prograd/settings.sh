# ProGrad's settings for the protocol scripts in this folder, as upstream's scripts
# (prograd.sh, base2new_*_prograd.sh, eval.sh): CFG=... overrides the config, SHOTS=...
# the shots of base-to-new and cross-dataset (upstream: 4), LAMBDA=... LOSS.LAMBDA
# (published 1.0; the paper's 8- and 16-shot Flowers102, DTD and EuroSAT use 0.8).
TRAINER=ProGrad
SHOTS="${SHOTS:-4}"
# Base-to-new: 100 epochs (50 on ImageNet, as upstream's README says).
base2new_cfg() { if [ "$1" = imagenet ]; then echo "${CFG:-rn50_ep50}"; else echo "${CFG:-rn50_ep100}"; fi; }
# Cross-dataset / robustness: the ImageNet model of 50 epochs.
XD_CFG="${CFG:-rn50_ep50}"
# Few-shot as in upstream's README: 50 epochs for 1 shot, 100 for 2 and 4, 200 for 8 and 16.
fewshot_cfg() { case "$1" in 1) echo "${CFG:-rn50_ep50}" ;; 2|4) echo "${CFG:-rn50_ep100}" ;; *) echo "${CFG:-rn50}" ;; esac; }
METHOD_OPTS="LOSS.LAMBDA ${LAMBDA:-1.0}"
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
