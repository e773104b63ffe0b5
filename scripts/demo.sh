#!/bin/bash
# The embedded demo: base-to-new generalisation on SynthWorld, with the world CLIP
# SynthCLIP-Cone (the releases' logit scale and geometry), for every method of the
# project on its published settings (configs/trainers/<Method>/synthworld_published*.yaml:
# the papers' optimiser, learning rate, warm-up, batch and context; shorter schedules),
# through train.py and the sweep; then the table, the figures and the world's fidelity
# against the published table (python -m tools.world_check).
#
#   bash scripts/demo.sh            # 3 seeds
#   bash scripts/demo.sh --quick    # 1 seed
#
# Runs go to output/demo/ (DEMO_OUTPUT); finished jobs are reused, so a second call
# only prints the table again (delete output/demo to start over). The world is
# generated once into output/demo/data (DEMO_DATA). DEMO_JOBS jobs run at a time
# (default: the number of CPU cores, at most 4).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SEEDS="1 2 3"
case "${1:-}" in
    --quick) SEEDS="1" ;;
    "") ;;
    *) echo "usage: bash scripts/demo.sh [--quick]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"
# Looked up, not imported (importing torch and torchvision takes seconds).
if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in
        ('torch', 'torchvision', 'yacs', 'tabulate', 'tqdm', 'ftfy', 'regex', 'PIL', 'scipy',
         'matplotlib', 'sklearn')))" \
        2>/dev/null; then
    echo "Installing the requirements (requirements.txt) ..."
    "$PYTHON" -m pip install -q -r requirements.txt
fi

export PYTHON CFG=synthworld_published OMP_NUM_THREADS=1
export DATA="${DEMO_DATA:-$REPO/output/demo/data}"
export OUTPUT="${DEMO_OUTPUT:-$REPO/output/demo}"
# (nproc obeys OMP_NUM_THREADS, which is 1 here: ask it without.)
JOBS="${DEMO_JOBS:-$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 2)}"
[ "$JOBS" -gt 4 ] && JOBS=4
mkdir -p "$DATA" "$OUTPUT/logs"
start=$(date +%s)

# The jobs are the base-to-new grid of runs/grid.py, run by the sweep (tools/sweep.py);
# its full output goes to $OUTPUT/logs/sweep.txt, each job's to sweep-log.txt in its run folder.
sweep() {  # PROTOCOL ARGS...
    # shellcheck disable=SC2086  # EXTRA_OPTS: KEY VALUE pairs for every train.py call
    "$PYTHON" -m tools.sweep "$@" --datasets synthworld --cfg "$CFG" --root "$DATA" \
        --output "$OUTPUT" --workers "$JOBS" ${EXTRA_OPTS:+--opts $EXTRA_OPTS} 2>&1 | tee -a "$OUTPUT/logs/sweep.txt" \
        | grep --line-buffered '^\[sweep\]' \
        || { echo "[demo] a job failed; see $OUTPUT/logs/sweep.txt" >&2; exit 1; }
}
# Zero-shot first: it generates the world on first use, before parallel jobs need it.
echo "[demo] zero-shot CLIP (generates SynthWorld on first use)"
sweep base2new --methods ZeroshotCLIP --seeds 1
# Every method on its synthworld_published config (CoOp: the paper's 16 random vectors);
# CoOp also with E2MIM's context (4 vectors from "a photo of a"), and E2MIM's three
# ablations (NAME@CFG: a row of its own). Longest jobs first (CoCoOp encodes the prompts
# once per image; the deep-prompt methods encode every image at every step), so that
# the parallel workers finish together.
# shellcheck disable=SC2086
sweep base2new --seeds $SEEDS --methods CoCoOp PromptSRC IVLP ProGrad MaPLe E2MIM KgCoOp CoOp \
    CoOp@${CFG}_ctxv1 E2MIM@${CFG}_no_mi E2MIM@${CFG}_no_mixup E2MIM@${CFG}_no_mi_no_mixup

echo
"$PYTHON" parse_test_res.py "$OUTPUT/base2new" --base2new
# The world CLIP's calibration and the world's fidelity against the published table
# (E2MIM is never part of it). A failed check is reported, and the demo goes on.
# shellcheck disable=SC2086
fidelity=0
"$PYTHON" -m tools.world_check --root "$DATA" --tree "$OUTPUT/base2new" --cfg "$CFG" \
    --markdown "$OUTPUT/fidelity.md" ${EXTRA_OPTS:+--opts $EXTRA_OPTS} || fidelity=$?
[ "$fidelity" -gt 1 ] && { echo "[demo] world_check failed to run" >&2; exit 1; }
# One E2MIM and one CoOp run (seed 1) on the new classes for the t-SNE figures.
run1() { echo "$OUTPUT/base2new/train_base/synthworld/shots_16/$1/$CFG/seed1"; }
"$PYTHON" -m tools.report "$OUTPUT" --title "SynthWorld base-to-new demo" \
    --intro "16 shots per base class; world CLIP SynthCLIP-Cone; every method on its published settings (shorter schedules); error bars: std over seeds." \
    --section "$OUTPUT/fidelity.md" --tsne "$(run1 E2MIM)" "$(run1 CoOp)" --tsne-subsample new
[ "$fidelity" -eq 0 ] && echo "[demo] fidelity: every check met" \
    || echo "[demo] fidelity: some checks not met (see $OUTPUT/fidelity.md)"
echo "[demo] done in $(( $(date +%s) - start )) s"
