# PromptSRC's settings for the protocol scripts in this folder: its configs are in
# runs/grid.py (published: 4+4 context tokens, depth 9, 20 epochs, GPA 15, 1; cross-dataset:
# depth 3, GPA 6, 10; few-shot: 50 epochs, GPA 30, 30; upstream uses 45, 5 for StanfordCars,
# Flowers102, FGVCAircraft, DTD and EuroSAT: GPA="45 5" sets it). CFG=... overrides the config.
METHOD=PromptSRC
if [ -n "${GPA:-}" ]; then
    read -r gpa_mean gpa_std <<< "$GPA"
    METHOD_OPTS="TRAINER.PROMPTSRC.GPA_MEAN $gpa_mean TRAINER.PROMPTSRC.GPA_STD $gpa_std"
fi
source "$(dirname "${BASH_SOURCE[0]}")/../protocols.sh"
