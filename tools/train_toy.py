"""``train.py`` with the toy dataset and trainer of ``tools/toy_linear.py`` registered.

    python -m tools.train_toy --root /tmp/toy --seed 1 --trainer ToyLinear \
        --dataset-config-file configs/toy/toy_colours.yaml \
        --config-file configs/toy/toy_linear.yaml --output-dir output/toy/seed1
"""


import tools.toy_linear  # noqa: F401  (registers ToyColours and ToyLinear)
import train

if __name__ == "__main__":
    train.run()
