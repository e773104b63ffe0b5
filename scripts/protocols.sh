# The evaluation protocols of CoOp and CoCoOp, one function each, shared by the
# scripts in scripts/<method>/. A method's settings.sh sets TRAINER, the config
# names and METHOD_OPTS (KEY VALUE overrides), then sources this file.
#
# Environment:
#   DATA        folder that holds the datasets (required; see DATASETS.md)
#   OUTPUT      where runs are written (default: output, under the repository)
#   PYTHON      interpreter (default: python)
#   EXTRA_OPTS  KEY VALUE overrides appended to every train.py call
#               (e.g. "DATALOADER.NUM_WORKERS 4"; they win over everything else)
#
# A job whose output folder already holds its result is skipped; a folder left
# by an interrupted job is handed to train.py again, which resumes it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT="${OUTPUT:-output}"
case "$OUTPUT" in /*) ;; *) OUTPUT="$REPO/$OUTPUT" ;; esac
CONFIG_DIR="${CONFIG_DIR:-$TRAINER}"
SHOTS="${SHOTS:-16}"

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

# has_result DIR SIGNAL: a log in DIR shows an accuracy after the line SIGNAL
# ("Finish training" for training jobs, "=> result" for evaluations).
has_result() {
    cat "$1"/log.txt* 2>/dev/null | awk -v signal="$2" \
        'index($0, signal) == 1 { seen = 1 } seen && /^\* accuracy:/ { found = 1 }
         END { exit !found }'
}

# run_job KIND DIR TRAIN_PY_ARGS...: KIND is "train" or "eval".
run_job() {
    local kind=$1 dir=$2; shift 2
    local signal="Finish training"
    [ "$kind" = eval ] && signal="=> result"
    if has_result "$dir" "$signal"; then
        echo "Results are available in ${dir}. Skip this job"
        return 0
    fi
    echo "Run this job and save the output to ${dir}"
    # shellcheck disable=SC2086  # option lists are meant to split into words
    (cd "$REPO" && "${PYTHON:-python}" train.py --root "$DATA" --output-dir "$dir" "$@" \
        ${METHOD_OPTS:-} ${EXTRA_OPTS:-})
}

# last_epoch MODEL_DIR: the epoch of the final checkpoint of a finished run.
last_epoch() {
    has_result "$1" "Finish training" \
        || die "no finished training run in $1; run the matching *_train.sh first"
    local pointer
    pointer=$(ls "$1"/*/checkpoint | head -n 1)
    head -n 1 "$pointer" | sed 's/.*-//'
}

common_args() {  # DATASET SEED CFG
    echo --seed "$2" --trainer "$TRAINER" \
        --dataset-config-file "configs/datasets/$1.yaml" \
        --config-file "configs/trainers/$CONFIG_DIR/$3.yaml"
}

# ---------------------------------------------------------------- base-to-new
base2new_train() {  # DATASET SEED
    need_args 2 "DATASET SEED" "$@"
    local cfg; cfg=$(base2new_cfg "$1")
    local dir="$OUTPUT/base2new/train_base/$1/shots_$SHOTS/$TRAINER/$cfg/seed$2"
    # shellcheck disable=SC2046
    run_job train "$dir" $(common_args "$1" "$2" "$cfg") \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base
}

base2new_test() {  # DATASET SEED
    need_args 2 "DATASET SEED" "$@"
    local cfg; cfg=$(base2new_cfg "$1")
    local common="$1/shots_$SHOTS/$TRAINER/$cfg/seed$2"
    local model_dir="$OUTPUT/base2new/train_base/$common"
    local epoch; epoch=$(last_epoch "$model_dir")
    # shellcheck disable=SC2046
    run_job eval "$OUTPUT/base2new/test_new/$common" $(common_args "$1" "$2" "$cfg") \
        --model-dir "$model_dir" --load-epoch "$epoch" --eval-only \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new
}

# ------------------------------------- cross-dataset and domain generalisation
XD_SOURCE="${XD_SOURCE:-imagenet}"

xd_model_dir() { echo "$OUTPUT/$XD_SOURCE/$TRAINER/${XD_CFG}_${SHOTS}shots/seed$1"; }

xd_train() {  # SEED
    need_args 1 "SEED" "$@"
    # shellcheck disable=SC2046
    run_job train "$(xd_model_dir "$1")" $(common_args "$XD_SOURCE" "$1" "$XD_CFG") \
        DATASET.NUM_SHOTS "$SHOTS"
}

xd_test() {  # DATASET SEED
    need_args 2 "DATASET SEED" "$@"
    local model_dir; model_dir=$(xd_model_dir "$2")
    local epoch; epoch=$(last_epoch "$model_dir")
    # shellcheck disable=SC2046
    run_job eval "$OUTPUT/evaluation/$TRAINER/${XD_CFG}_${SHOTS}shots/$1/seed$2" \
        $(common_args "$1" "$2" "$XD_CFG") \
        --model-dir "$model_dir" --load-epoch "$epoch" --eval-only
}

# ---------------------------------------------------------------- few-shot
fewshot() {  # DATASET SEED SHOTS
    need_args 3 "DATASET SEED SHOTS" "$@"
    case "$3" in 1|2|4|8|16) ;; *) die "SHOTS must be 1, 2, 4, 8 or 16; got $3" ;; esac
    local cfg; cfg=$(fewshot_cfg "$3")
    # shellcheck disable=SC2046
    run_job train "$OUTPUT/$1/$TRAINER/${cfg}_$3shots/seed$2" $(common_args "$1" "$2" "$cfg") \
        DATASET.NUM_SHOTS "$3"
}

# ---------------------------------------------------------------- zero-shot
# base2new_zeroshot DATASET SEED: zero-shot CLIP on the base and the new classes,
# written in the base-to-new layout (train_base/, test_new/) so that the results
# table shows it beside the trained methods.
base2new_zeroshot() {
    need_args 2 "DATASET SEED" "$@"
    local cfg; cfg=$(base2new_cfg "$1")
    local common="$1/shots_$SHOTS/$TRAINER/$cfg/seed$2" sub split
    for sub in base new; do
        split=train_base
        [ "$sub" = new ] && split=test_new
        # shellcheck disable=SC2046
        run_job eval "$OUTPUT/base2new/$split/$common" $(common_args "$1" "$2" "$cfg") \
            --eval-only DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$sub"
    done
}

# zeroshot DATASET [all|base|new]: zero-shot CLIP (ZS_TRAINER, default ZeroshotCLIP)
# with the backbone and input settings of this method's base-to-new config.
zeroshot() {
    [ "$#" -ge 1 ] && [ "$#" -le 2 ] || die "expected DATASET [all|base|new]; got: $*"
    need_data "$@"
    local sub="${2:-all}" cfg; cfg=$(base2new_cfg "$1")
    local trainer="${ZS_TRAINER:-ZeroshotCLIP}" args
    args=$(TRAINER="$trainer" common_args "$1" 1 "$cfg")
    # shellcheck disable=SC2086
    METHOD_OPTS="" run_job eval "$OUTPUT/$trainer/$cfg/$1/$sub" $args \
        --eval-only DATASET.SUBSAMPLE_CLASSES "$sub"
}
