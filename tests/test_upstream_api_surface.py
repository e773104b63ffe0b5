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


# Extensions of our dassl that the programs use: atomic writes, --trust-checkpoint and the
# error it raises for a checkpoint file it cannot use (reported in one line).
PROGRAM_EXTENSIONS = {"dassl.utils": {"atomic_write", "trust_checkpoints", "CheckpointFileError"},
                      "dassl.utils.tools": {"atomic_write"}}
# No exceptions for datasets/ and trainers/: they run on upstream Dassl as they are.
EXCEPTIONS = {}


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
