#!/usr/bin/env python3
"""Fashion-MNIST IDX files (Debian's dataset-fashion-mnist) → kiln NPZ datasets.

    scripts/fashion_mnist.py OUT_DIR [IDX_DIR]

Writes OUT_DIR/train.npz (60,000 rows) and OUT_DIR/test.npz (10,000 rows):
`x` float32 [rows, 784] scaled to [0, 1], `y` uint8 class labels 0–9.
IDX_DIR defaults to /usr/share/datasets/fashion-mnist (`apt-get install
dataset-fashion-mnist`). Needs numpy.
"""
import gzip
import pathlib
import struct
import sys

import numpy as np


def idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    src = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist")
    out.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = idx(src / f"{prefix}-images-idx3-ubyte.gz")
        labels = idx(src / f"{prefix}-labels-idx1-ubyte.gz")
        x = (images.reshape(len(images), -1).astype(np.float32) / 255.0)
        np.savez(out / f"{split}.npz", x=x, y=labels.astype(np.uint8))
        print(f"{out / f'{split}.npz'}: {x.shape[0]} rows × {x.shape[1]} features", file=sys.stderr)


if __name__ == "__main__":
    main()
