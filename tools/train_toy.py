"""``train.py`` with the toy dataset and trainer of ``tools/toy_linear.py`` registered.

    python tools/train_toy.py --root /tmp/toy --seed 1 --trainer ToyLinear \
        --dataset-config-file configs/toy/toy_colours.yaml \
        --config-file configs/toy/toy_linear.yaml --output-dir output/toy/seed1
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import tools.toy_linear  # noqa: F401  (registers ToyColours and ToyLinear)
import train

if __name__ == "__main__":
    train.run()
