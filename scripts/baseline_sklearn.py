#!/usr/bin/env python3
"""A baseline measured in the same run as kiln: scikit-learn's MLPClassifier on
the quickstart's data, with the source document's settings as close as
scikit-learn allows — hidden layers (64, 32) relu, a logistic output, Adam
lr 0.001, batch 32, 10 epochs, no early stopping.

    pip install scikit-learn numpy
    python3 scripts/baseline_sklearn.py train.csv test.csv [RUNS]

Prints one line per run and the median fit time in seconds, so
scripts/e2e_bench.sh can quote kiln's time as a ratio against it.
"""
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return data[:, :-1], data[:, -1].astype(np.int64)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    x, y = load(sys.argv[1])
    xt, yt = load(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    times = []
    for run in range(1, runs + 1):
        clf = MLPClassifier(hidden_layer_sizes=(64, 32), activation="relu", solver="adam",
                            learning_rate_init=0.001, batch_size=32, max_iter=10,
                            early_stopping=False, tol=0.0, n_iter_no_change=10**9,
                            random_state=run)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            clf.fit(x, y)
            secs = time.perf_counter() - t0
        acc = float((clf.predict(xt) == yt).mean())
        print(f"sklearn run {run}: fit {secs:.3f} s; test accuracy {acc:.4f}", file=sys.stderr)
        times.append(secs)
    print(f"{statistics.median(times):.6f}")


if __name__ == "__main__":
    main()
