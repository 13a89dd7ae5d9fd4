"""The modern recipes: a small residual CNN, SGD-Nesterov with a one-cycle schedule, label smoothing, batch
augmentation on the device and flip test-time augmentation.

Hyperparameters are chosen on a held-out 10% of the training set (`validation="holdout"`), never on the test set;
docs/results.md has the measurements behind each choice. `best` is written as `fast` with what differs.
"""

from __future__ import annotations

from dataclasses import replace

from fmnist.config import AugmentConfig, OptimizerConfig, Recipe, ScheduleConfig

# Fashion-MNIST training-set pixel statistics (of pixel / 255): the modern recipes standardize their input.
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530

FAST = Recipe(
    name="fast",
    precision="bf16",
    description="Residual CNN (16-32-64-128), 15 epochs one-cycle SGD-Nesterov, label smoothing, crop+flip, flip TTA; batch 256",
    model="resnet",
    model_args={"stem": 16, "widths": [32, 64, 128], "blocks": [0, 1, 0]},
    optimizer=OptimizerConfig(name="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4),
    schedule=ScheduleConfig(name="onecycle", warmup=0.2, final=0.0),
    # Epochs: as many as fit the 3-minute budget on 2 cores with ~10% to spare (about 10.5 s each); the
    # held-out accuracy was still rising with them (seed 0: 93.28% after 8 epochs, 93.58% after 13).
    epochs=15,
    batch_size=256,
    label_smoothing=0.1,
    augment=AugmentConfig(crop_padding=2, flip=True),
    tta_flip=True,
    validation="holdout",
    drop_last=True,
    mean=FASHION_MEAN,
    std=FASHION_STD,
)

BEST = replace(
    FAST,
    name="best",
    description="Wider residual CNN (32-64-128-256), 22 epochs one-cycle SGD-Nesterov, crop+flip+erasing, flip TTA; batch 256; all 60k",
    model_args={"stem": 32, "widths": [64, 128, 256], "blocks": [0, 1, 1]},
    # Chosen with the held-out split (24 epochs on 54,000 images: 95.00% held out, seed 0), then trained on
    # all 60,000 images like the seeds' final models: 11% more images per epoch, so 22 epochs fit the
    # 15-minute budget (about 37 s each) with ~8% to spare, and no per-epoch validation is spent.
    epochs=22,
    augment=AugmentConfig(crop_padding=2, flip=True, erase=0.5),
    # No weight EMA: at 0.999 per step its averaged weights scored 83% on the held-out split (and 82.9% on
    # test) while the live weights trained to 96% (one run, docs/results.md). The live weights are kept.
    validation="none",
)

MODERN = [FAST, BEST]
