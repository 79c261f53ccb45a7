"""Writes the Keras fixtures of crates/kiln-formats/src/keras/tests.rs (run once; the outputs are committed).

    KERAS_BACKEND=numpy .ci/.venv/bin/python scripts/keras_fixtures.py

Each accepted model gets `<name>.keras` and `<name>.json` (input rows and Keras' own
`model.predict` outputs, which kiln must reproduce within 1e-5); the refused ones only
`<name>.keras`. Models are small and seeded, so the files stay a few kB.
"""

import io
import json
import os
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "numpy")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "crates" / "kiln-formats" / "tests" / "fixtures" / "keras"


def save(name, model, inputs=None):
    # Non-zero biases, so a bias read wrongly shows in the outputs.
    bias_rng = np.random.default_rng(len(name))
    for layer in model.layers:
        if isinstance(layer, layers.Dense) and layer.use_bias:
            layer.bias.assign(bias_rng.normal(scale=0.3, size=layer.bias.shape).astype(np.float32))
    path = OUT / f"{name}.keras"
    model.save(path)
    if inputs is not None:
        outputs = model.predict(inputs, verbose=0)
        (OUT / f"{name}.json").write_text(
            json.dumps(
                {"inputs": inputs.tolist(), "outputs": outputs.astype(np.float64).tolist()}
            )
            + "\n"
        )
    return path


def rewrite_weights(src, dst, edit):
    """Copies the .keras zip `src` to `dst`, passing model.weights.h5 through `edit(h5py.File)`."""
    with zipfile.ZipFile(src) as zin:
        entries = {n: zin.read(n) for n in zin.namelist()}
    buf = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    entries["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as zout:
        for n, data in entries.items():
            zout.writestr(n, data)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)

    # (a) The source document's model.
    seq = keras.Sequential(
        [
            keras.Input((100,)),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="seed_mlp",
    )
    seq_path = save("sequential", seq, rng.normal(size=(5, 100)).astype(np.float32))

    # (b) A Functional chain: Dropout, an Activation layer folded into a linear Dense,
    # exact GELU, a bias-free layer and a softmax over 3 classes.
    x = inp = keras.Input((6,), name="features")
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(16, name="hidden")(x)
    x = layers.Activation("tanh", name="hidden_tanh")(x)
    x = layers.Dropout(0.25, name="drop")(x)
    x = layers.Dense(8, activation="gelu", use_bias=False, name="gelu")(x)
    x = layers.Dense(3, activation="softmax", name="probabilities")(x)
    fun = keras.Model(inp, x, name="chain")
    fun_path = save("functional", fun, rng.normal(size=(4, 6)).astype(np.float32))

    # (c) A convolution, refused by name and class.
    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(2, 3, name="conv"),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    save("conv", conv)

    # (d) A non-linear Functional graph (a skip connection), refused.
    i = keras.Input((4,), name="x")
    a = layers.Dense(4, name="a")(i)
    s = layers.Add(name="skip")([i, a])
    save("residual", keras.Model(i, layers.Dense(1, name="out")(s)))

    # (e) The sequential model with its second kernel of the wrong shape.
    def wrong_kernel(f):
        names = []
        f.visit(names.append)
        kernel = next(n for n in names if n.endswith("dense_1/vars/0"))
        del f[kernel]
        f.create_dataset(kernel, data=np.zeros((64, 31), np.float32))

    rewrite_weights(seq_path, OUT / "wrong_shape.keras", wrong_kernel)

    # (f) The functional model with the zip deflated (as a re-zipped file would be).
    with zipfile.ZipFile(fun_path) as zin:
        entries = {n: zin.read(n) for n in zin.namelist()}
    with zipfile.ZipFile(OUT / "deflated.keras", "w", zipfile.ZIP_DEFLATED) as zout:
        for n, data in entries.items():
            zout.writestr(n, data)

    for p in sorted(OUT.glob("*.keras")):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
