"""The baselines train as upstream's code does: golden trajectories.

tests/data/golden/<trainer>.json holds what upstream's own code did on a tiny ViT CLIP
and a fake Caltech101 (4 shots, seed 1, fp32, one thread, 2 epochs), recorded by
tools/record_upstream_golden.py, which also says how. Here our train.py runs the same
way on the same inputs, regenerated from their seeds (in this process and on one
thread, as the recording); no upstream code is needed.
"""
import json
import os.path as osp

import pytest
import torch

from tests.helpers import make_trainer
from tools.record_upstream_golden import (
    BASELINES,
    GOLDEN_DIR,
    SEED,
    fingerprints,
    read_run,
    run_options,
    write_inputs,
)

TOLERANCE = 1e-5  # on every learned value after each epoch


def train_ours(name, folder, capsys):
    baseline = BASELINES[name]
    root, clip_path = write_inputs(folder)
    inputs = fingerprints(root, clip_path)
    output_dir = osp.join(folder, "output")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        capsys.readouterr()
        trainer = make_trainer(name, root, clip_path, *baseline.our_opts,
                               *run_options(baseline, clip_path), output_dir=output_dir,
                               seed=SEED)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    return read_run(capsys.readouterr().out, output_dir, baseline.learned), inputs


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_trains_as_upstream(name, tmp_path, capsys):
    with open(osp.join(GOLDEN_DIR, f"{name.lower()}.json")) as handle:
        golden = json.load(handle)
    ours, inputs = train_ours(name, str(tmp_path), capsys)
    assert inputs == golden["inputs"], (
        "the regenerated tiny CLIP or fake images differ from those of the recording "
        f"(versions then: {golden['recorded_with']['versions']}); re-record with "
        "tools/record_upstream_golden.py")

    for epoch, tensors in golden["tensors"].items():
        for key, recorded in tensors.items():
            expected = torch.tensor(recorded["values"]).reshape(recorded["shape"])
            actual = ours["tensors"][epoch][key]
            difference = (actual - expected).abs().max().item()
            assert difference <= TOLERANCE, (
                f"{name} {key} after epoch {epoch} is {difference:.3g} from upstream's")
    assert ours["loss_lines"] == golden["loss_lines"]
    # Dassl.ProGrad (upstream KgCoOp) prints 2 decimals, Dassl and ours 1.
    assert ours["accuracy"] == round(golden["accuracy"], 1)
