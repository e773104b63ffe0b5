#!/bin/bash
# The embedded demo: base-to-new generalisation on SynthWorld for ZeroshotCLIP, CoOp,
# CoCoOp, KgCoOp and E2MIM through train.py and the sweep, then the table.
#
#   bash scripts/demo.sh            # 3 seeds (about 5 minutes on 2 CPU cores)
#   bash scripts/demo.sh --quick    # 1 seed (under 2 minutes)
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

export PYTHON CFG=synthworld OMP_NUM_THREADS=1
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
    "$PYTHON" -m tools.sweep "$@" --datasets synthworld --cfg synthworld --root "$DATA" \
        --output "$OUTPUT" --workers "$JOBS" ${EXTRA_OPTS:+--opts $EXTRA_OPTS} 2>&1 | tee -a "$OUTPUT/logs/sweep.txt" \
        | grep --line-buffered '^\[sweep\]' \
        || { echo "[demo] a job failed; see $OUTPUT/logs/sweep.txt" >&2; exit 1; }
}
# Zero-shot first: it generates the world on first use, before parallel jobs need it.
echo "[demo] zero-shot CLIP (generates SynthWorld on first use)"
sweep base2new --methods ZeroshotCLIP --seeds 1
# Every method on its synthworld config; CoOp also as the base-to-new scripts run it (4
# vectors from "a photo of a"), and E2MIM's three ablations (NAME@CFG: a row of its own).
# Longest jobs first (CoCoOp encodes the prompts once per image), so that the parallel
# workers finish together. (ProGrad, IVLP, MaPLe and PromptSRC are not in the demo: see
# docs/SYNTHWORLD.md.)
# shellcheck disable=SC2086
sweep base2new --seeds $SEEDS --methods CoCoOp E2MIM KgCoOp CoOp CoOp@synthworld_ctxv1 \
    E2MIM@synthworld_no_mi E2MIM@synthworld_no_mixup E2MIM@synthworld_no_mi_no_mixup

echo
"$PYTHON" parse_test_res.py "$OUTPUT/base2new" --base2new
# One E2MIM and one CoOp run (seed 1) on the new classes for the t-SNE figures.
run1() { echo "$OUTPUT/base2new/train_base/synthworld/shots_16/$1/$CFG/seed1"; }
"$PYTHON" -m tools.report "$OUTPUT" --title "SynthWorld base-to-new demo" \
    --intro "16 shots per base class; SynthCLIP-RN backbone; error bars: std over seeds." \
    --tsne "$(run1 E2MIM)" "$(run1 CoOp)" --tsne-subsample new
echo "[demo] done in $(( $(date +%s) - start )) s"
