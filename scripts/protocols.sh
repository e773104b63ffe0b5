# The evaluation protocols of CoOp and CoCoOp, one function each, shared by the
# scripts in scripts/<method>/. A method's settings.sh sets METHOD (its name in
# runs/grid.py, which holds its configs and options) and, from the method's own
# environment variables, METHOD_OPTS (KEY VALUE pairs replacing the method's options),
# then sources this file.
#
# Environment:
#   DATA        folder that holds the datasets (required; see DATASETS.md)
#   OUTPUT      where runs are written (default: output, under the repository)
#   PYTHON      interpreter (default: python)
#   EXTRA_OPTS  KEY VALUE overrides appended to every train.py call
#               (e.g. "DATALOADER.NUM_WORKERS 4"; they win over everything else)
#   CFG         one config name for every protocol (configs/trainers/<method>/CFG.yaml)
#   SHOTS       shots of base-to-new and cross-dataset training (default 16)
#
# A job whose output folder already holds its result is skipped; a folder left
# by an interrupted job is handed to train.py again, which resumes it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT="${OUTPUT:-output}"
case "$OUTPUT" in /*) ;; *) OUTPUT="$REPO/$OUTPUT" ;; esac
SHOTS="${SHOTS:-16}"
XD_SOURCE="${XD_SOURCE:-imagenet}"

die() { echo "$(basename "$0"): error: $*" >&2; exit 2; }

need_data() {
    [ -n "${DATA:-}" ] || die "DATA is not set. Point it at the folder that holds the datasets" \
        "(layout in DATASETS.md), e.g.  DATA=/path/to/datasets bash $0 $*"
    [ -d "$DATA" ] || die "DATA=$DATA is not a folder"
}

need_args() {  # COUNT USAGE ARGS...
    local count=$1 usage=$2; shift 2
    [ "$#" -eq "$count" ] || die "expected $usage; got: $*"
    need_data "$@"
}

# run_step STEP ARGS...: one job of the grid. runs/grid.py, the definition the sweep
# (python -m tools.sweep) reads too, answers with the job's state, its output folder
# and its train.py arguments, one per line.
run_step() {
    local answer job
    answer=$(cd "$REPO" && "${PYTHON:-python}" -m runs.grid "$1" "$METHOD" "${@:2}" \
        --root "$DATA" --output "$OUTPUT" --shots "$SHOTS" --xd-source "$XD_SOURCE" \
        ${ZS_TRAINER:+--zs-trainer "$ZS_TRAINER"} ${CFG:+--cfg "$CFG"} \
        ${METHOD_OPTS+--method-opts $METHOD_OPTS} --opts ${EXTRA_OPTS:-}) \
        || exit $?
    mapfile -t job <<< "$answer"
    if [ "${job[0]}" = finished ]; then
        echo "Results are available in ${job[1]}. Skip this job"
        return 0
    fi
    echo "Run this job and save the output to ${job[1]}"
    (cd "$REPO" && "${PYTHON:-python}" "${job[@]:2}")
}

base2new_train() { need_args 2 "DATASET SEED" "$@"; run_step base2new_train "$@"; }
base2new_test() { need_args 2 "DATASET SEED" "$@"; run_step base2new_test "$@"; }
xd_train() { need_args 1 "SEED" "$@"; run_step xd_train "$@"; }
xd_test() { need_args 2 "DATASET SEED" "$@"; run_step xd_test "$@"; }
fewshot() { need_args 3 "DATASET SEED SHOTS" "$@"; run_step fewshot "$@"; }

# base2new_zeroshot DATASET SEED: zero-shot CLIP on the base and the new classes,
# written in the base-to-new layout (train_base/, test_new/) so that the results
# table shows it beside the trained methods.
base2new_zeroshot() {
    need_args 2 "DATASET SEED" "$@"
    run_step base2new_zeroshot "$@" base
    run_step base2new_zeroshot "$@" new
}

# zeroshot DATASET [all|base|new]: zero-shot CLIP (ZS_TRAINER, default ZeroshotCLIP)
# with the backbone and input settings of this method's base-to-new config.
zeroshot() {
    [ "$#" -ge 1 ] && [ "$#" -le 2 ] || die "expected DATASET [all|base|new]; got: $*"
    need_data "$@"
    run_step zeroshot "$1" "${2:-all}"
}
