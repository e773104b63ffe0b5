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


def two_seed_tree(root):
    """One dataset, two seeds of unequal accuracies: base/new (90, 30) and (70, 50)."""
    for seed, base, new in ((1, 90.0, 30.0), (2, 70.0, 50.0)):
        common = os.path.join("caltech101", "shots_16", "CoOp", "cfg", f"seed{seed}")
        write_log(os.path.join(root, "train_base", common), base, "Finish training")
        write_log(os.path.join(root, "test_new", common), new, "=> result")
    return root


# H over seeds: that of the mean base (80) and mean new (40) accuracies, 53.33; the mean of
# the per-seed H values (45.00 and 58.33) would be 51.67. Printed with two decimals, the two
# differ by 1.67, far outside the check's 0.005.
H_OF_MEANS, MEAN_OF_H = 2 * 80 * 40 / 120, (2 * 90 * 30 / 120 + 2 * 70 * 50 / 120) / 2


def test_h_over_seeds_is_that_of_the_mean_accuracies(tmp_path, capsys):
    assert round(H_OF_MEANS, 2) == 53.33 and round(MEAN_OF_H, 2) == 51.67
    parse_test_res.main([two_seed_tree(str(tmp_path)), "--base2new", "--format", "csv"])
    rows = {row["dataset"]: row for row in csv.DictReader(
        line for line in io.StringIO(capsys.readouterr().out) if not line.startswith("#"))}
    row = rows["caltech101"]
    assert (row["seeds_base"], row["seeds_new"]) == ("2", "2")
    assert float(row["base"]) == 80.0 and float(row["new"]) == 40.0
    assert float(row["H"]) == pytest.approx(H_OF_MEANS, abs=0.005)


def test_the_sweeps_table_shows_the_h_of_the_mean_accuracies(tmp_path, capsys):
    from runs.grid import Settings
    from tools import sweep

    settings = Settings(root=str(tmp_path / "data"), output=str(tmp_path / "out"))
    two_seed_tree(settings.out("base2new"))
    sweep.print_results("base2new", [], settings)
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("caltech101")).split()
    assert row[1] == "2/2" and float(row[2]) == 80.0 and float(row[5]) == 40.0
    assert row[8] == f"{H_OF_MEANS:.2f}" == "53.33"
