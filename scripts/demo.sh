#!/bin/bash
# The embedded demo: base-to-new generalisation on SynthWorld for ZeroshotCLIP, CoOp,
# CoCoOp, KgCoOp and E2MIM through train.py and the protocol scripts, then the table.
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

# Zero-shot first: it generates the world on first use, before parallel jobs need it.
echo "[demo] zero-shot CLIP (generates SynthWorld on first use)"
bash scripts/zsclip/base2new.sh synthworld 1 > "$OUTPUT/logs/zsclip.txt" 2>&1 \
    || { echo "[demo] zero-shot failed; see $OUTPUT/logs/zsclip.txt" >&2; exit 1; }

run_method() {  # METHOD SEED: train on base classes, then test on new ones
    local log="$OUTPUT/logs/$1-seed$2.txt"
    echo "[demo] $1 seed $2"
    { bash "scripts/$1/base2new_train.sh" synthworld "$2" \
        && bash "scripts/$1/base2new_test.sh" synthworld "$2"; } > "$log" 2>&1 \
        || { echo "[demo] $1 seed $2 failed; see $log" >&2; return 1; }
}
export -f run_method

# Longest jobs first (CoCoOp encodes the prompts once per image), so that the
# parallel workers finish together.
for method in cocoop e2mim kgcoop coop; do
    for seed in $SEEDS; do echo "$method $seed"; done
done | xargs -P "$JOBS" -n 2 bash -c 'run_method "$0" "$1"'

echo
"$PYTHON" parse_test_res.py "$OUTPUT/base2new" --base2new
# One E2MIM and one CoOp run (seed 1) on the new classes for the t-SNE figures.
run1() { echo "$OUTPUT/base2new/train_base/synthworld/shots_16/$1/$CFG/seed1"; }
"$PYTHON" tools/report.py "$OUTPUT" --title "SynthWorld base-to-new demo" \
    --intro "16 shots per base class; SynthCLIP-RN backbone; error bars: std over seeds." \
    --tsne "$(run1 E2MIM)" "$(run1 CoOp)" --tsne-subsample new
echo "[demo] done in $(( $(date +%s) - start )) s"
