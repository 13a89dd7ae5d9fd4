"""Resumable training: an interrupted and resumed run ends with the weights of an uninterrupted one, bit for bit."""

from __future__ import annotations

import time

import pytest
import torch

from fmnist.config import OptimizerConfig, TrainOptions
from fmnist.errors import DataError
from fmnist.recipes import get_recipe
from fmnist.train.loop import Callbacks, TrainData, TrainingInterrupted, fit
from tests.helpers import airbench_recipe, make_split


class StopAt(Callbacks):
    """Asks to stop once `steps` steps have been taken in this process."""

    def __init__(self, steps: int) -> None:
        self.steps, self.taken = steps, 0

    def should_stop(self) -> bool:
        self.taken += 1
        return self.taken == self.steps


def data():
    train, val = make_split(96, seed=21), make_split(32, seed=22)
    return TrainData((train.images, train.labels), (val.images, val.labels), 10)


# minivgg: Dropout (the global generator), BatchNorm buffers, SGD momentum with a decaying lr; fast: augmentation
# (its own generator), Nesterov, one-cycle, label smoothing, flip TTA in validation; seed004 with Adam's moments;
# airbench: lookahead's average, alternating flips, a fitted whitening layer, two learning-rate groups; pruned:
# data pruning's scores and weights (epoch 2 prunes), Muon's filter updates, a whitening bias stopped after epoch 1.
@pytest.mark.parametrize("name, stop_after", [("minivgg", 6), ("minivgg", 4), ("fast", 5), ("seed004", 7),
                                              ("airbench", 5), ("pruned", 4), ("pruned", 5)])
def test_interrupt_and_resume_give_the_uninterrupted_weights(tmp_path, name, stop_after):
    if name == "airbench":
        recipe = airbench_recipe(epochs=3)
    elif name == "pruned":
        recipe = airbench_recipe(epochs=3).replace(prune=0.5, prune_until=1.0, optimizer=OptimizerConfig(
            name="muon", lr=0.1, momentum=0.9, nesterov=True, norm_bias_lr=16, whiten_bias_epochs=1))
    else:
        recipe = get_recipe(name).replace(epochs=3, batch_size=32)
    if name == "fast":
        recipe = recipe.replace(model_args={"stem": 8, "widths": [8, 16], "blocks": [0, 1]})
    options = TrainOptions(seed=5, device="cpu")
    straight = fit(recipe, data(), options)
    ckpt = tmp_path / "checkpoint.safetensors"
    # 3 steps per epoch: stop_after 6 is the end of epoch 2, 4 and 5 are inside epoch 2, 7 inside epoch 3.
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(recipe, data(), options, StopAt(stop_after), checkpoint=ckpt)
    assert stopped.value.checkpoint == ckpt and ckpt.is_file()
    torch.manual_seed(12345)  # the resumed run must not depend on the process's generator state
    resumed = fit(recipe, data(), options, checkpoint=ckpt, resume=True)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    assert [h.val_acc for h in resumed.history] == [h.val_acc for h in straight.history]


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    ckpt = tmp_path / "checkpoint.safetensors"
    recipe = get_recipe("mlp").replace(epochs=2, batch_size=32)
    fit(recipe, data(), TrainOptions(device="cpu"), checkpoint=ckpt)
    with pytest.raises(DataError, match="another run"):
        fit(recipe.replace(epochs=3), data(), TrainOptions(device="cpu"), checkpoint=ckpt, resume=True)
    # Nor in another precision (a cross-validation's fold resumed with another --precision went on in it).
    with pytest.raises(DataError, match="trained in fp32 and would go on in bf16 here"):
        fit(recipe, data(), TrainOptions(device="cpu", precision="bf16"), checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot be read"):
        fit(recipe, data(), TrainOptions(device="cpu"), checkpoint=ckpt, resume=True)


def test_a_checkpoint_does_not_resume_on_changed_training_data(tmp_path):
    ckpt = tmp_path / "checkpoint.safetensors"
    recipe = get_recipe("mlp").replace(epochs=2, batch_size=32)
    fit(recipe, data(), TrainOptions(device="cpu"), checkpoint=ckpt)
    changed = data()
    changed.train[0][:] = 255 - changed.train[0]  # the same number of images, inverted
    with pytest.raises(DataError, match="data changed"):
        fit(recipe, changed, TrainOptions(device="cpu"), checkpoint=ckpt, resume=True)


@pytest.mark.parametrize("change", [{"history": [{"bogus": 1}]}, {"history": "x"}, {"numpy": [1]}, {"epoch": 99},
                                    {"epoch": 0}])
def test_a_hand_edited_checkpoint_header_is_one_sentence(tmp_path, change):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    ckpt = tmp_path / "checkpoint.safetensors"
    recipe = get_recipe("mlp").replace(epochs=3, batch_size=32)
    with pytest.raises(TrainingInterrupted):
        fit(recipe, data(), TrainOptions(device="cpu"), StopAt(4), checkpoint=ckpt)
    with safe_open(str(ckpt), framework="pt") as f:
        header, tensors = json.loads(f.metadata()["fmnist"]), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(ckpt), metadata={"fmnist": json.dumps(header | change)})
    with pytest.raises(DataError, match="does not fit this run"):
        fit(recipe, data(), TrainOptions(device="cpu"), checkpoint=ckpt, resume=True)


class SlowStopAt(StopAt):
    """StopAt whose steps each take at least 0.1 s more."""

    def should_stop(self) -> bool:
        time.sleep(0.1)
        return super().should_stop()


def test_the_resumed_epoch_counts_its_time_before_the_stop(tmp_path):
    recipe = get_recipe("mlp").replace(epochs=3, batch_size=32)
    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(TrainingInterrupted):  # 3 steps per epoch: steps 4 and 5 are epoch 2's, 0.1 s each at least
        fit(recipe, data(), TrainOptions(seed=5, device="cpu"), SlowStopAt(5), checkpoint=ckpt)
    resumed = fit(recipe, data(), TrainOptions(seed=5, device="cpu"), checkpoint=ckpt, resume=True)
    assert resumed.history[1].seconds >= 0.2
    assert resumed.seconds >= sum(h.seconds for h in resumed.history) - 1e-6


def test_a_checkpoint_or_an_unfinished_run_given_as_a_model_says_how_to_finish_it(tmp_path):
    from fmnist.checkpoint import load_model

    run = tmp_path / "my run"
    run.mkdir()
    ckpt = run / "checkpoint.safetensors"
    recipe = get_recipe("mlp").replace(epochs=2)
    with pytest.raises(TrainingInterrupted):
        fit(recipe, data(), TrainOptions(device="cpu"), StopAt(1), checkpoint=ckpt)
    for given in (run, ckpt):
        with pytest.raises(DataError, match="stopped before the end") as e:
            load_model(given)
        assert "fmnist train --resume 'RUN'".replace("RUN", str(run)) in str(e.value)
    fold = tmp_path / "r0-f0.checkpoint.safetensors"  # a cross-validation fold's, which cv itself resumes
    fold.write_bytes(ckpt.read_bytes())
    with pytest.raises(DataError, match="cross-validation fold's.*same `fmnist cv` command"):
        load_model(fold)


def test_a_checkpoint_naming_its_precision_as_torch_does_still_resumes(tmp_path):
    # For a while checkpoints said "float32" / "bfloat16"; now "fp32" / "bf16", as --precision does.
    import json as _json

    from safetensors import safe_open
    from safetensors.torch import save_file

    recipe = get_recipe("mlp").replace(epochs=2, batch_size=32)
    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(TrainingInterrupted):
        fit(recipe, data(), TrainOptions(device="cpu"), StopAt(4), checkpoint=ckpt)
    with safe_open(str(ckpt), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    header = _json.loads(meta["fmnist"])
    assert header["identity"]["precision"] == "fp32"
    header["identity"]["precision"] = "float32"
    save_file(tensors, str(ckpt), metadata={**meta, "fmnist": _json.dumps(header)})
    assert [h.epoch for h in fit(recipe, data(), TrainOptions(device="cpu"), checkpoint=ckpt, resume=True).history] == [1, 2]
