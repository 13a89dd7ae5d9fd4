"""The seed recipes: every Keras system of ../shared/SEEDS.md, with the Keras defaults that matter spelled out."""

from __future__ import annotations

from dataclasses import replace

from fmnist.config import OptimizerConfig, Recipe, ScheduleConfig

_SGD = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)
_ADAM = OptimizerConfig(name="adam", lr=1e-3)

BASELINE = Recipe(
    name="baseline",
    precision="bf16",
    description="Conv32 3x3 valid -> MaxPool -> Dense 100 -> Dense 10 (he-uniform); SGD 0.01 m0.9, batch 32, 10 epochs",
    model="baseline",
    model_args={"filters": 32, "padding": "valid"},
    optimizer=_SGD,
    epochs=10,
    batch_size=32,
    seed_doc="002",
    reported=90.99,
    reported_note="5-fold CV 91.187% (std 0.121); final model 90.990% test",
)

SEEDS = [
    Recipe(
        name="mlp",
        precision="fp32",
        description="Flatten -> Dense 128 ReLU -> Dense 10; Adam, batch 32, 10 epochs",
        model="mlp",
        optimizer=_ADAM,
        epochs=10,
        batch_size=32,
        seed_doc="004 (part 1, linked notebook)",
        reported=87.0,
        reported_note="about 87% test",
    ),
    BASELINE,
    # Seed 002's variants: what differs from `baseline`.
    replace(BASELINE, name="baseline-same", description="baseline with 'same' padding",
            model_args={"filters": 32, "padding": "same"}, reported=91.257, reported_note="5-fold CV 91.257% (std 0.209)"),
    replace(BASELINE, name="baseline-wide", description="baseline-same with 64 filters",
            model_args={"filters": 64, "padding": "same"}, reported=90.913, reported_note="5-fold CV 90.913% (std 0.412)"),
    Recipe(
        name="seed003",
        precision="bf16",
        description="Conv32 -> Pool -> Conv64 -> Pool -> Dense 128 -> Dropout 0.2 -> Dense 10; Adam, batch 128, 20 epochs",
        model="seed003",
        optimizer=_ADAM,
        epochs=20,
        batch_size=128,
        seed_doc="003",
        reported=91.4,
        reported_note="96% train / 91.4% test",
    ),
    Recipe(
        name="seed004",
        precision="bf16",
        description="Conv32 -> Conv64 -> Pool -> Dropout 0.25 -> Dense 10; Adam, batch 32, 30 epochs",
        model="seed004",
        optimizer=_ADAM,
        epochs=30,
        batch_size=32,
        seed_doc="004",
        reported=92.03,
        reported_note="92.03% test",
    ),
    Recipe(
        name="minivgg",
        precision="bf16",
        description="MiniVGGNet: 2x[Conv-ReLU-BN x2, Pool, Dropout] -> Dense 512 -> BN -> Dropout -> Dense 10; SGD decay, 25 epochs",
        model="minivgg",
        optimizer=_SGD,
        schedule=ScheduleConfig(name="keras_decay", decay=0.01 / 25),
        epochs=25,
        batch_size=32,
        seed_doc="000/001",
        reported=93.52,
        reported_note="93.52% test",
    ),
]

