"""Dynamic data pruning after InfoBatch (Qin et al., ICLR 2024): an epoch skips part of the images already learned.

Every training step records each image's loss (it is computed anyway). At the start of a pruned epoch, the
images whose last loss is below the mean of the scored ones are "well learned"; a random `fraction` of them sit
the epoch out, and the rest of them have their loss scaled by 1 / (1 - fraction), so the epoch's expected
gradient is the full epoch's. The images never scored yet (loss +inf) always train. The last epochs train on
everything (`epochs_pruned`), as InfoBatch anneals, so the model ends on the unbiased objective.

Pure functions over tensors; the generator decides which images sit out, so a seeded run prunes the same way.
"""

from __future__ import annotations

import torch

UNSCORED = float("inf")


def epochs_pruned(fraction: float, until: float, epochs: int) -> range:
    """The 1-based epochs that prune: from the second (the first scores every image) up to `until` of the run
    (rounded down), never the last."""
    if fraction <= 0:
        return range(0)
    return range(2, min(int(until * epochs), epochs - 1) + 1)


def select(scores: torch.Tensor, fraction: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(the indices that train this epoch, in order, int64 [K]; each image's loss weight, float32 [N]) for the
    images' last losses `scores` [N] (+inf where not scored yet)."""
    scored = torch.isfinite(scores)
    mean = scores[scored].mean() if bool(scored.any()) else scores.new_tensor(UNSCORED)
    learned = scored & (scores < mean)
    draw = torch.rand(len(scores), generator=gen, device=gen.device).to(scores.device)
    out = learned & (draw < fraction)
    weights = torch.ones_like(scores)
    weights[learned & ~out] = 1.0 / (1.0 - fraction)
    return torch.nonzero(~out).squeeze(1), weights
