"""benchmarks/: every script's machine-readable output (numbers only, no timing asserted)."""
import json
import subprocess
import sys

from tests.helpers import REPO


def _benchmark(name, tmp_path, *args):
    # A hang guard, not a speed bound: train_speed --quick took 200-300 s of a loaded
    # 2-core machine inside the suite and once ran past an earlier 300 s limit.
    out = tmp_path / f"{name}.json"
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--quick",
                    "--reps", "1", "--workdir", str(tmp_path / "work"), "--json", str(out),
                    *args], check=True, cwd=REPO, capture_output=True, timeout=900)
    return json.loads(out.read_text())


def test_benchmarks_write_their_json(tmp_path):
    train = _benchmark("train_speed", tmp_path, "--backbones", "SynthCLIP-RN", "--classes", "10",
                       "--batch", "8")
    for key in ["ZeroshotCLIP", "CoOp", "CoCoOp/batch1", "CoCoOp/batch4", "KgCoOp",
                "E2MIM/feature", "E2MIM/image", "CoOp/cached", "E2MIM/feature/cached"]:
        entry = train[key]
        assert set(entry) == {"ms_per_image", "min", "max", "peak_mem_mb"}
        assert 0 < entry["min"] <= entry["ms_per_image"] <= entry["max"]
        assert entry["peak_mem_mb"] > 0
    # CoCoOp encodes the class prompts once per image: 4 images hold 4 text passes' memory.
    assert train["CoCoOp/batch4"]["peak_mem_mb"] > train["CoCoOp/batch1"]["peak_mem_mb"]

    evaluation = _benchmark("eval_speed", tmp_path, "--classes", "10", "--batch", "25")
    assert evaluation["same_predictions"] is True
    assert evaluation["ours_images_per_s"] > 0 and evaluation["per_batch_text_images_per_s"] > 0
    assert evaluation["image_encoder_images_per_s"] > 0

    text = _benchmark("text_encoder", tmp_path, "--backbone", "tiny-ViT", "--classes", "8")
    assert text["truncated_ms"] > 0 and text["full_ms"] > 0
    assert text["max_abs_diff"] < 1e-5
    deep = _benchmark("text_encoder", tmp_path, "--backbone", "tiny-ViT", "--classes", "8",
                      "--deep-depth", "2")
    assert deep["deep_depth"] == 2 and deep["truncated_ms"] > 0 and deep["full_ms"] > 0
    assert deep["max_abs_diff"] < 1e-5  # deep prompts sit before the last end-of-text token
