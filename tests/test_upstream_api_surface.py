"""Our datasets and trainers import from dassl only what upstream Dassl.pytorch also
offers, so they run unchanged on it; train.py and tools/, this repository's own
programs, may also use the few extensions of our dassl listed here."""
import ast
import glob
import os.path as osp

from tests.helpers import REPO

UPSTREAM_NAMES = {
    "dassl.config": {"get_cfg_default"},
    "dassl.engine": {"TRAINER_REGISTRY", "TrainerX", "build_trainer"},
    "dassl.data": {"DataManager", "DatasetWrapper"},
    "dassl.data.data_manager": {"build_data_loader"},
    "dassl.data.datasets": {"DATASET_REGISTRY", "Datum", "DatasetBase", "build_dataset"},
    "dassl.data.transforms": {"build_transform"},
    "dassl.optim": {"build_optimizer", "build_lr_scheduler"},
    "dassl.metrics": {"compute_accuracy"},
    "dassl.evaluation": {"build_evaluator"},
    "dassl.utils": {"setup_logger", "set_random_seed", "collect_env_info", "mkdir_if_missing",
                    "listdir_nohidden", "read_json", "write_json", "check_isfile",
                    "load_pretrained_weights", "load_checkpoint", "save_checkpoint",
                    "count_num_param", "check_availability"},
}


# Extensions of our dassl that the programs use: atomic writes, --trust-checkpoint, and
# several processes under torchrun.
PROGRAM_EXTENSIONS = {"dassl.utils": {"atomic_write", "trust_checkpoints"},
                      "dassl.utils.tools": {"atomic_write"},
                      "dassl.utils.distributed": {"broadcast_object", "init_distributed",
                                                  "is_main_process", "world_size"}}
# PromptSRC resumes its prompt-aggregation state from the latest checkpoint (upstream
# cannot resume it at all); on upstream Dassl that import is the one thing missing.
# Several processes under torchrun are this repository's extension (dassl/utils/distributed.py):
# the shared prompting blocks shard and gather through it.
EXCEPTIONS = {"trainers/promptsrc.py": {"latest_checkpoint"},
              "trainers/prompt_trainer.py": {"average_gradients", "gather_rows", "world_size"},
              "trainers/clip_prompting.py": {"all_gather_classes", "class_shard", "world_size"},
              "trainers/e2mim.py": {"world_size"}}


def test_only_upstream_dassl_names_are_imported():
    files = [osp.join(REPO, "train.py")] + [
        f for folder in ("datasets", "trainers", "tools")
        for f in glob.glob(osp.join(REPO, folder, "**", "*.py"), recursive=True)]
    assert len(files) > 15
    offending = []
    for path in files:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dassl"):
                relative = osp.relpath(path, REPO)
                allowed = UPSTREAM_NAMES.get(node.module, set()) | EXCEPTIONS.get(relative, set())
                if not relative.startswith(("datasets", "trainers")):
                    allowed = allowed | PROGRAM_EXTENSIONS.get(node.module, set())
                offending += [f"{osp.relpath(path, REPO)}: {node.module}.{a.name}"
                              for a in node.names if a.name not in allowed]
            if isinstance(node, ast.Import):
                offending += [f"{osp.relpath(path, REPO)}: import {a.name}"
                              for a in node.names if a.name.startswith("dassl")]
    assert offending == []
