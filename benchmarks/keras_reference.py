"""The seeds' own Keras code, timed on this machine beside ours: seed 002's `baseline` (10 epochs, batch 32,
final model on the full training set, evaluated on the test set) and, optionally, seed 000/001's
MiniVGGNet for a few epochs. It is the reference for the speed-up figures in docs/results.md.

Keras is not a dependency of fmnist, and this module imports nothing else of the benchmarks (not the kit):
it runs in an environment of its own, from the repository root, with fmnist's source on the path:

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu rich
    PYTHONPATH=src /tmp/keras/bin/python -m benchmarks.keras_reference               # baseline
    PYTHONPATH=src /tmp/keras/bin/python -m benchmarks.keras_reference --minivgg 3   # + 3 MiniVGGNet epochs

benchmarks.side_by_side runs it that way, one job per process (--json). The data comes from fmnist's loader
(Keras' own `fashion_mnist.load_data()` downloads, which this machine cannot); the arrays are the same
60,000/10,000 verified images (--limit / --test-limit: seeded subsets, as the benchmarks' --quick takes).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from fmnist.data import load_dataset
from fmnist.data.splits import subset

# Keras and TensorFlow are imported in main(), after this: they read it when they load.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def baseline_model(keras):
    """Seed 002's define_model(), as written (Keras 3 spells `lr` as `learning_rate`)."""
    layers = keras.layers

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(100, activation="relu", kernel_initializer="he_uniform"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def minivgg_model(keras, epochs: int = 25):
    """Seeds 000/001's MiniVGGNet.build() with SGD(lr=0.01, momentum=0.9, decay=0.01/25) as Keras 3 allows."""
    layers = keras.layers

    def block(filters):
        return [layers.Conv2D(filters, (3, 3), padding="same"), layers.Activation("relu"), layers.BatchNormalization(),
                layers.Conv2D(filters, (3, 3), padding="same"), layers.Activation("relu"), layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)), layers.Dropout(0.25)]

    model = keras.Sequential([
        keras.Input((28, 28, 1)), *block(32), *block(64), layers.Flatten(), layers.Dense(512),
        layers.Activation("relu"), layers.BatchNormalization(), layers.Dropout(0.5), layers.Dense(10),
        layers.Activation("softmax"),
    ])
    # Keras 2's decay=lr/epochs: lr_t = lr / (1 + decay * step), as an InverseTimeDecay schedule.
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=0.01 / 25)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def load_arrays(keras, limit: int | None = None, test_limit: int | None = None):
    """fmnist's verified arrays in Keras' layout: float32 [N, 28, 28, 1] in [0, 1], one-hot labels; seeded
    subsets of `limit` training and `test_limit` test images when given."""
    ds = load_dataset()
    (x, y), (xt, yt) = [subset(s.images, s.labels, n, 0) if n else (s.images, s.labels)
                        for s, n in ((ds.train, limit), (ds.test, test_limit))]
    x = x.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    xt = xt.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    return x, keras.utils.to_categorical(y, 10), xt, keras.utils.to_categorical(yt, 10)


def time_baseline(keras, data, epochs: int) -> dict:
    """Seed 002's final run: fit on the full training set without validation, then evaluate on the test set."""
    x, y, xt, yt = data
    model = baseline_model(keras)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    secs = time.perf_counter() - t0
    _, acc = model.evaluate(xt, yt, verbose=0)
    return {"system": "baseline", "epochs": epochs, "train_seconds": secs, "seconds_per_epoch": secs / epochs,
            "test_accuracy": float(acc)}


def time_minivgg(keras, data, epochs: int) -> dict:
    """Seeds 000/001: one fit() call per epoch with the test set as validation_data, each timed."""
    x, y, xt, yt = data
    model = minivgg_model(keras)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=32, validation_data=(xt, yt), verbose=0)
        times.append(time.perf_counter() - t0)
    _, acc = model.evaluate(xt, yt, verbose=0)
    return {"system": "minivgg", "epochs": epochs, "train_seconds": sum(times), "epoch_seconds": times,
            "seconds_per_epoch": float(np.median(times)), "test_accuracy": float(acc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="baseline epochs (the seed's 10)")
    parser.add_argument("--minivgg", type=int, default=0, help="also time this many MiniVGGNet epochs")
    parser.add_argument("--system", choices=["baseline", "minivgg"], help="time only this one, for --epochs")
    parser.add_argument("--json", action="store_true", help="print one JSON line per system (for side_by_side)")
    parser.add_argument("--limit", type=int, default=None, help="train on a seeded subset of this many images")
    parser.add_argument("--test-limit", type=int, default=None, help="test on a seeded subset of this many images")
    args = parser.parse_args()

    import keras  # only in the Keras environment, and only after TF_CPP_MIN_LOG_LEVEL is set
    import tensorflow as tf

    data = load_arrays(keras, args.limit, args.test_limit)
    if not args.json:
        print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, {os.cpu_count()} CPUs; "
              f"load {os.getloadavg()[0]:.1f}")
    jobs = [(args.system, args.epochs)] if args.system else \
        [("baseline", args.epochs)] + ([("minivgg", args.minivgg)] if args.minivgg else [])
    for system, epochs in jobs:
        row = (time_baseline if system == "baseline" else time_minivgg)(keras, data, epochs)
        row["versions"] = f"Keras {keras.__version__}, TensorFlow {tf.__version__}"
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"keras {system}: {row['test_accuracy'] * 100:.2f}% test after {epochs} epochs in "
                  f"{row['train_seconds']:.1f} s ({row['seconds_per_epoch']:.2f} s/epoch)", flush=True)


if __name__ == "__main__":
    main()
