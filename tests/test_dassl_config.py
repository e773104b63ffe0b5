"""Config defaults and the merge of CoOp-family config files."""
import glob
import os.path as osp

import pytest

from dassl.config import get_cfg_default
from tests.helpers import REPO
from trainers.defaults import extend_cfg

CONFIG_DIR = osp.join(REPO, "tests", "data", "upstream_configs")


def fresh_cfg():
    cfg = get_cfg_default()
    extend_cfg(cfg)
    return cfg


def test_defaults_follow_upstream():
    cfg = get_cfg_default()
    assert cfg.SEED == -1 and cfg.OUTPUT_DIR == "./output"
    assert cfg.OPTIM.NAME == "adam" and cfg.OPTIM.LR == 0.0003
    assert cfg.OPTIM.MOMENTUM == 0.9 and cfg.OPTIM.WEIGHT_DECAY == 5e-4
    assert cfg.OPTIM.LR_SCHEDULER == "single_step" and cfg.OPTIM.STEPSIZE == (-1,)
    assert cfg.TEST.FINAL_MODEL == "last_step" and cfg.TEST.SPLIT == "test"
    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 32 and cfg.DATALOADER.TEST.BATCH_SIZE == 32
    assert cfg.DATALOADER.NUM_WORKERS == 4
    assert cfg.INPUT.SIZE == (224, 224) and cfg.DATASET.NUM_SHOTS == -1
    # get_cfg_default hands out copies
    cfg.OPTIM.LR = 1.0
    assert get_cfg_default().OPTIM.LR == 0.0003


@pytest.mark.parametrize("path", sorted(glob.glob(osp.join(CONFIG_DIR, "*.yaml"))),
                         ids=osp.basename)
def test_published_style_configs_merge(path):
    cfg = fresh_cfg()
    cfg.merge_from_file(path)
    cfg.freeze()


def test_merge_order_dataset_method_overrides():
    cfg = fresh_cfg()
    cfg.merge_from_file(osp.join(CONFIG_DIR, "dataset_caltech101.yaml"))
    cfg.merge_from_file(osp.join(CONFIG_DIR, "cocoop_vit_b16_c4_ep10_batch1_ctxv1.yaml"))
    cfg.merge_from_list(["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base",
                         "TRAINER.COCOOP.N_CTX", "8"])
    assert cfg.DATASET.NAME == "Caltech101"
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and isinstance(cfg.OPTIM.WARMUP_CONS_LR, float)
    assert cfg.INPUT.SIZE == (224, 224)
    assert cfg.DATASET.NUM_SHOTS == 16 and cfg.DATASET.SUBSAMPLE_CLASSES == "base"
    assert cfg.TRAINER.COCOOP.N_CTX == 8 and cfg.TRAINER.COCOOP.CTX_INIT == "a photo of a"
    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 1
