"""parse_test_res.py on written logs: the harmonic mean of unequal base and new accuracies."""
import csv
import io
import os

import pytest

import parse_test_res


def write_log(folder, accuracy, signal):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "log.txt"), "w") as f:
        f.write(f"epoch [1/1] loss 1.0\n{signal}\n* total: 100\n* accuracy: {accuracy}%\n")


@pytest.fixture
def base2new_tree(tmp_path):
    """Two datasets, one seed each: (80, 40) and (60, 60)."""
    for dataset, base, new in (("caltech101", 80.0, 40.0), ("dtd", 60.0, 60.0)):
        common = os.path.join(dataset, "shots_16", "CoOp", "cfg", "seed1")
        write_log(tmp_path / "train_base" / common, base, "Finish training")
        write_log(tmp_path / "test_new" / common, new, "=> result")
    return str(tmp_path)


def test_h_is_the_harmonic_mean_per_dataset_and_of_the_averages(base2new_tree, capsys):
    parse_test_res.main([base2new_tree, "--base2new", "--format", "csv"])
    rows = {row["dataset"]: row for row in csv.DictReader(
        line for line in io.StringIO(capsys.readouterr().out) if not line.startswith("#"))}
    assert float(rows["caltech101"]["H"]) == pytest.approx(2 * 80 * 40 / 120, abs=0.005)  # 53.33
    assert float(rows["dtd"]["H"]) == pytest.approx(60.0)
    average = next(row for name, row in rows.items() if name.startswith("average"))
    assert float(average["base"]) == pytest.approx(70.0) and float(average["new"]) == 50.0
    # The average row's H is that of the averaged accuracies (CoCoOp's tables), not the
    # mean of the per-dataset H values (56.67) nor the arithmetic mean (60).
    assert float(average["H"]) == pytest.approx(2 * 70 * 50 / 120, abs=0.005)  # 58.33
