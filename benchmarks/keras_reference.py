"""The seeds' own Keras code, timed on this machine beside ours: seed 002's `baseline` (10 epochs, batch 32,
final model on the full training set, evaluated on the test set) and, optionally, seed 000/001's
MiniVGGNet for a few epochs. It is the reference for the speed-up figures in docs/results.md.

Keras is not a dependency of fmnist; run this in an environment of its own:

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu rich
    PYTHONPATH=src /tmp/keras/bin/python benchmarks/keras_reference.py               # baseline
    PYTHONPATH=src /tmp/keras/bin/python benchmarks/keras_reference.py --minivgg 3   # + 3 MiniVGGNet epochs

The data comes from fmnist's loader (Keras' own `fashion_mnist.load_data()` downloads, which this machine
cannot); the arrays are the same 60,000/10,000 verified images.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def baseline_model(keras):
    """Seed 002's define_model(), as written (Keras 3 spells `lr` as `learning_rate`)."""
    from keras import layers

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
    from keras import layers

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="baseline epochs (the seed's 10)")
    parser.add_argument("--minivgg", type=int, default=0, help="also time this many MiniVGGNet epochs")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from fmnist.data import load_dataset

    ds = load_dataset()
    x = ds.train.images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    xt = ds.test.images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    y = keras.utils.to_categorical(ds.train.labels, 10)
    yt = keras.utils.to_categorical(ds.test.labels, 10)
    print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")

    model = baseline_model(keras)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0)
    secs = time.perf_counter() - t0
    _, acc = model.evaluate(xt, yt, verbose=0)
    print(f"keras baseline: {acc * 100:.2f}% test after {args.epochs} epochs in {secs:.1f} s "
          f"({secs / args.epochs:.2f} s/epoch)", flush=True)

    if args.minivgg:
        model = minivgg_model(keras)
        times = []
        for _ in range(args.minivgg):
            t0 = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=32, validation_data=(xt, yt), verbose=0)
            times.append(time.perf_counter() - t0)
        print(f"keras minivgg: {np.median(times):.1f} s/epoch (median of {len(times)}, test-set validation included)")


if __name__ == "__main__":
    main()
