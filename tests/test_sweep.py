"""fmnist sweep: parameters parsed, trials scored on the held-out split only, a stored study continued."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna", reason="Optuna is not installed (pip install 'fmnist[sweep]')")

from fmnist.errors import UsageError  # noqa: E402
from fmnist.recipes import get_recipe  # noqa: E402
from fmnist.recipes.overrides import apply_assignment, canonical  # noqa: E402
from fmnist.sweep import SweepConfig, parse_param  # noqa: E402


@pytest.mark.parametrize("spec, kind, low, high, choices", [
    ("lr=0.05:0.4:log", "log", 0.05, 0.4, ()),
    ("epochs=8,10,12", "choice", None, None, (8, 10, 12)),
    ("batch_size=128:512:int", "int", 128, 512, ()),
    ("augment.erase=0:0.5", "float", 0.0, 0.5, ()),
    ("nesterov=true,false", "choice", None, None, (True, False)),
])
def test_parameters_parse(spec, kind, low, high, choices):
    p = parse_param(spec)
    assert (p.kind, p.low, p.high, p.choices) == (kind, low, high, choices)


@pytest.mark.parametrize("spec, fragment", [
    ("lr", "not a parameter"), ("lr=0.4:0.05", "LOW < HIGH"), ("lr=0:1:log", "LOW > 0"),
    ("lr=a:b", "numbers"), ("epochs=1.5:3:int", "whole"), ("bogus=1,2", "unknown recipe setting"),
    ("lr=0.1:0.2:cubic", "unknown range"), ("lr=nan:1", "finite"),
    ("val_fraction=0.1,0.5", "cannot be swept"), ("validation=test,none", "cannot be swept"),
    ("name=a,b", "cannot be swept"), ("optimizer.betas=[0.9,0.99]", "lists or objects"),
    ("optimizer.betas=0.9,0.99", "lists or objects"), ("augment.resize=20,2", "lists or objects"),
])
def test_bad_parameters_are_one_sentence(spec, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_param(spec)


def test_overrides_by_short_and_full_name():
    r = apply_assignment(get_recipe("fast"), "lr=0.3")
    assert r.optimizer.lr == 0.3 and canonical("lr") == "optimizer.lr"
    r = apply_assignment(r, "augment.erase=0.25")
    assert r.augment.erase == 0.25
    with pytest.raises(UsageError, match="epochs"):
        apply_assignment(r, "epochs=0")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        apply_assignment(r, "epochs")


def test_an_architecture_argument_of_the_wrong_kind_or_size_is_refused_when_set():
    # `--param model_args.widths=32,64` was accepted, then every trial failed; widths of 2000 trained a model that
    # could not be loaded.
    fast = get_recipe("fast")
    assert apply_assignment(fast, "model_args.widths=[32,64,128]").model_args["widths"] == [32, 64, 128]
    for assignment, fragment in [("model_args.widths=32", "widths=32 is not a list"),
                                 ("model_args.widths=[32,64,2000]", "out of bounds"),
                                 ("model_args.dirac=1", "not true or false"),
                                 ("model_args.bn_momentum=true", "not a number")]:
        with pytest.raises(UsageError, match=fragment):
            apply_assignment(fast, assignment)
    with pytest.raises(UsageError, match="32 is refused"):
        SweepConfig(recipe="fast", params=(parse_param("model_args.widths=32,64"),), trials=1)


def test_sweep_runs_three_trials_on_the_held_out_split_and_continues(cli, tiny_data_dir, tmp_path):
    for test_file in tiny_data_dir.glob("t10k-*"):
        test_file.write_bytes(b"not IDX")  # the test split is never read: with its files broken the sweep still runs
    args = ["sweep", "mlp", "--param", "lr=0.0005:0.01:log", "--param", "epochs=1,2", "--limit", "150",
            "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "sweeps", "--json"]
    r = cli(*args, "--trials", "3")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert [t["state"] for t in result["trials"]] == ["COMPLETE"] * 3
    assert all(0 <= t["accuracy"] <= 1 and t["params"]["epochs"] in (1, 2) for t in result["trials"])
    assert all(t["epochs_run"] == t["params"]["epochs"] for t in result["trials"])
    assert result["best_command"].startswith("fmnist train mlp --set optimizer.lr=")
    directory = tmp_path / "sweeps" / "mlp"
    assert (directory / "study.db").is_file() and (directory / "sweep.png").stat().st_size > 1000
    # Continued: the stored three are kept and one more is run.
    r = cli(*args, "--trials", "4")
    assert r.exit_code == 0, r.stderr
    again = json.loads(r.stdout)
    assert len(again["trials"]) == 4 and again["trials"][:3] == result["trials"]
    # Other settings under the same name are refused, not mixed in.
    r = cli("sweep", "mlp", "--param", "lr=0.001:0.1:log", "--limit", "150", "--data-dir", tiny_data_dir,
            "--dataset", "idx", "--root", tmp_path / "sweeps", "--trials", "5")
    assert r.exit_code == 2 and "--name" in r.stderr
    assert "params ['optimizer.lr in [0.0005, 0.01] (log)', 'epochs in {1, 2}'], not" in r.stderr, r.stderr


@pytest.mark.parametrize("spec, fragment", [
    ("lr=abc", "'abc' is refused"), ("lr=-1:1", "-1.0 is refused"), ("epochs=1,a", "whole number"),
    ("optimizer.name=adam,foo", "'foo' is refused"),
])
def test_a_value_the_recipe_refuses_fails_before_a_study_is_stored(cli, tiny_data_dir, tmp_path, spec, fragment):
    r = cli("sweep", "mlp", "--param", spec, "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "sweeps", "--trials", "1")
    assert r.exit_code == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "sweeps").exists()  # nothing stored: the corrected command may use the same name


def test_a_continued_sweep_draws_new_points(cli, tiny_data_dir, tmp_path):
    args = ["sweep", "mlp", "--param", "lr=0.0005:0.01:log", "--param", "epochs=1", "--limit", "100",
            "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "sweeps", "--json"]
    values = []
    for trials in (1, 2, 3):  # three runs of the command, one new trial each
        r = cli(*args, "--trials", str(trials))
        assert r.exit_code == 0, r.stderr
        values = [t["params"]["lr"] for t in json.loads(r.stdout)["trials"]]
    assert len(values) == 3 and len(set(values)) == 3, values  # a resumed sampler does not repeat its first draw


def test_a_trial_that_diverges_is_pruned_and_the_sweep_goes_on(cli, tiny_data_dir, tmp_path):
    r = cli("sweep", "mlp", "--param", "lr=1e30,1e31", "--param", "epochs=2", "--limit", "100",
            "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "sweeps", "--trials", "2", "--json")
    assert r.exit_code == 0, r.stderr
    trials = json.loads(r.stdout)["trials"]
    assert [t["state"] for t in trials] == ["PRUNED", "PRUNED"], trials  # both ran: the first did not stop the sweep
    assert all("diverged in epoch 1" in t["diverged"] for t in trials)
    assert all(t["seconds"] is not None for t in trials)  # the time a pruned trial took, for its row and figure point


def test_sweep_in_two_processes_shares_the_study(cli, tiny_data_dir, tmp_path):
    r = cli("sweep", "mlp", "--name", "two", "--param", "lr=0.0005:0.01:log", "--param", "epochs=1",
            "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "sweeps", "--trials", "2",
            "--jobs", "2", "--json")
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["trials"]) == 2


def test_sweep_options_are_checked(cli, tiny_data_dir, tmp_path):
    base = ["sweep", "mlp", "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "s"]
    # Without --param the learning rate is searched, from half to twice the recipe's.
    r = cli(*base, "--trials", "1", "--limit", "100", "--json")
    assert r.exit_code == 0, r.stderr
    (value,) = json.loads(r.stdout)["trials"][0]["params"].values()
    assert 0.5e-3 <= value <= 2e-3  # mlp's Adam learning rate is 1e-3
    for extra, fragment in ((["--param", "lr=1:2", "--trials", "0"], "--trials"),
                            (["--param", "lr=1:2", "--param", "lr=1:3"], "once"),
                            (["--param", "lr=1:2", "--limit", "5"], "--limit")):
        r = cli(*base, *extra)
        assert r.exit_code == 2 and fragment in r.stderr, r.stderr
    (tmp_path / "a-file").write_text("")
    r = cli(*base[:-1], tmp_path / "a-file", "--trials", "1", "--limit", "100")
    assert r.exit_code == 2 and "cannot make the sweep's folder" in r.stderr and "--root" in r.stderr, r.stderr


def test_a_damaged_study_is_one_sentence(cli, tiny_data_dir, tmp_path):
    (tmp_path / "s" / "bad").mkdir(parents=True)
    (tmp_path / "s" / "bad" / "study.db").write_text("not a database")
    r = cli("sweep", "mlp", "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "s", "--name", "bad",
            "--trials", "1", "--limit", "100")
    assert r.exit_code == 2 and "file is not a database" in r.stderr and "--name" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_train_takes_the_settings_a_sweep_prints(cli, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "mlp", "--set", "optimizer.lr=0.002", "--set", "epochs=1", "--limit", "100",
            "--data-dir", tiny_data_dir, "--dataset", "idx", "--out", out)
    assert r.exit_code == 0, r.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["optimizer"]["lr"] == 0.002 and config["recipe"]["epochs"] == 1
    r = cli("train", "mlp", "--set", "bogus=1", "--data-dir", tiny_data_dir, "--dataset", "idx", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "unknown recipe setting" in r.stderr and not (tmp_path / "x").exists()


class _Trial:
    """What _Pruning uses of an Optuna trial."""

    def __init__(self, prune: bool = False):
        self.reported, self.attrs, self.asked, self.prune = [], {}, 0, prune

    def report(self, value, step):
        self.reported.append((step, value))

    def set_user_attr(self, key, value):
        self.attrs[key] = value

    def should_prune(self):
        self.asked += 1
        return self.prune


def test_epochs_at_a_smaller_size_are_not_reported_to_the_pruner():
    from fmnist.sweep.study import _Pruning
    from fmnist.train.stats import EpochStats

    trial = _Trial()
    callbacks = _Pruning(trial, 5, first=3)
    for epoch, acc in enumerate([0.6, 0.7, 0.9, 0.92, float("nan")], start=1):
        callbacks.epoch_end(EpochStats(epoch, 0.5, 0.8, 0.4, acc, 0.1, 1.0))
    assert trial.reported == [(600, 0.9), (800, 0.92)] and not callbacks.should_stop()
    assert trial.attrs["epochs_run"] == 4


def test_trials_of_other_lengths_are_compared_at_the_same_part_of_their_runs():
    # The median pruner compares reports of the same step: epoch 2 of 4 meets epoch 1 of 2 (both halfway through
    # their one-cycle schedules), not the 2-epoch run's annealed end, and every length meets the others at the end.
    from fmnist.sweep.study import WARMUP, _Pruning, progress_step
    from fmnist.train.stats import EpochStats

    assert progress_step(2, 4) == progress_step(1, 2) == 500 and progress_step(8, 8) == progress_step(12, 12)
    assert progress_step(1, 1000) != progress_step(2, 1000) and progress_step(1, 5) < WARMUP < progress_step(2, 5)
    assert progress_step(1, 4) < WARMUP  # a quarter done is not yet past the warm-up (Optuna prunes at >=)
    trial = _Trial(prune=True)
    last = _Pruning(trial, 1)
    last.epoch_end(EpochStats(1, 0.5, 0.8, 0.4, 0.9, 0.1, 1.0))
    # A prune at the last epoch would save nothing: the finished trial's result counts.
    assert trial.reported == [(1000, 0.9)] and trial.asked == 0 and not last.should_stop()
    early = _Pruning(trial, 4)
    early.epoch_end(EpochStats(1, 0.5, 0.8, 0.4, 0.5, 0.1, 1.0))
    assert trial.asked == 1 and early.should_stop()


def test_a_resized_recipe_counts_the_epochs_it_did_not_report(cli, tiny_data_dir, tmp_path):
    assert get_recipe("fast").augment.resize == (20, 2)  # its first 2 epochs are not reported to the pruner
    r = cli("sweep", "fast", "--param", "epochs=3", "--limit", "200", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "sweeps", "--trials", "1", "--json")
    assert r.exit_code == 0, r.stderr
    (trial,) = json.loads(r.stdout)["trials"]
    assert trial["state"] == "COMPLETE" and trial["epochs_run"] == 3


def test_booleans_are_true_or_false_and_the_best_command_writes_them_so(cli, tiny_data_dir, tmp_path):
    # "False" was taken as a non-empty string, which trained with flips on.
    assert apply_assignment(get_recipe("mlp"), "augment.flip=False").augment.flip is False
    assert apply_assignment(get_recipe("mlp"), "flip=TRUE").augment.flip is True
    for assignment in ("flip=maybe", "tta_flip=no", "nesterov=1", "drop_last=yes"):
        with pytest.raises(UsageError, match="must be true or false"):
            apply_assignment(get_recipe("mlp"), assignment)
    r = cli("sweep", "mlp", "--param", "flip=false", "--param", "epochs=1", "--limit", "100", "--seed", "3",
            "--precision", "fp32", "--data-dir", tiny_data_dir, "--dataset", "idx", "--root", tmp_path / "s",
            "--trials", "1", "--json")
    assert r.exit_code == 0, r.stderr
    command = json.loads(r.stdout)["best_command"]
    assert "--set augment.flip=false" in command and "--seed 3" in command and "--precision fp32" in command
    out = tmp_path / "run"
    r = cli("train", "mlp", "--set", "augment.flip=false", "--set", "epochs=1", "--limit", "100",
            "--data-dir", tiny_data_dir, "--dataset", "idx", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["recipe"]["augment"]["flip"] is False


def test_two_settings_with_one_short_name_keep_their_full_names(cli, tiny_data_dir, tmp_path):
    from fmnist.sweep.space import labels

    params = (parse_param("optimizer=sgd,adam"), parse_param("schedule=constant,cosine"), parse_param("lr=0.1:1"))
    assert list(labels(params).values()) == ["optimizer.name", "schedule.name", "lr"]
    r = cli("sweep", "mlp", "--param", "optimizer=sgd,adam", "--param", "schedule=constant,cosine",
            "--param", "epochs=1", "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "s", "--trials", "2", "--json")
    assert r.exit_code == 0, r.stderr
    for trial in json.loads(r.stdout)["trials"]:
        assert trial["params"]["optimizer.name"] in ("sgd", "adam")
        assert trial["params"]["schedule.name"] in ("constant", "cosine")


def test_the_figure_draws_named_choices_as_categories():
    from fmnist.plots.sweep import sweep_figure

    rows = [{"state": "COMPLETE", "accuracy": a, "seconds": s, "params": {"optimizer.name": o, "lr": lr, "w": w}}
            for a, s, o, lr, w in ((0.8, 1.0, "sgd", 0.1, None), (0.7, 2.0, "adam", 0.2, 2),
                                   (0.75, 1.5, "sgd", 0.3, True))]
    fig = sweep_figure(rows, [("optimizer.name", False), ("lr", True), ("w", False)],
                       {"optimizer.name": ("adamw", "sgd", "adam"), "w": (2, None, True)})
    ax = fig.axes[0]
    # Every choice in the order given, tried or not.
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adamw", "sgd", "adam"]
    points = ax.collections[0].get_offsets()
    assert sorted(map(tuple, points.tolist())) == [(1.0, 75.0), (1.0, 80.0), (2.0, 70.0)]
    # A list mixing numbers, null and true/false: categories labelled as --set takes them, none left out.
    ax = fig.axes[2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "null", "true"]
    assert sorted(map(tuple, ax.collections[0].get_offsets().tolist())) == [(0.0, 70.0), (1.0, 80.0), (2.0, 75.0)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["finished", "best"]


@pytest.mark.parametrize("extra, fragment", [
    (["--seed", "-1"], "--seed"), (["--seed", "4294967296"], "--seed"), (["--precision", "bogus"], "--precision"),
    (["--storage", "bogus://x"], "not a database URL"), (["--ray-address", "127.0.0.1:1"], "nothing answers"),
    (["--ray-address", "nohost"], "HOST:PORT"), (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_options_that_cannot_work_fail_before_a_study_is_stored(cli, tiny_data_dir, tmp_path, extra, fragment):
    r = cli("sweep", "mlp", "--param", "epochs=1,2", "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "s", "--name", "x", "--trials", "1", *extra)
    assert r.exit_code == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "s" / "x" / "study.db").exists()


def test_a_sweep_in_a_database_fails_before_its_study_is_stored_there(cli, tiny_data_dir, tmp_path):
    # With --storage the study is not stored until the trials can run: the same command, mended, is not told it
    # was run with other settings.
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["sweep", "mlp", "--param", "epochs=1", "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "s", "--name", "x", "--trials", "1", "--storage", url]
    r = cli(*args, "--precision", "bf16", "--device", "tpu")
    assert r.exit_code == 2 and "unknown device 'tpu'" in r.stderr, r.stderr
    assert "x" not in optuna.get_all_study_names(storage=url)
    r = cli(*args, "--precision", "bf16")
    assert r.exit_code == 0, r.stderr


def test_the_largest_seed_runs_and_continues(cli, tiny_data_dir, tmp_path):
    args = ["sweep", "mlp", "--param", "epochs=1", "--limit", "100", "--data-dir", tiny_data_dir, "--dataset", "idx",
            "--root", tmp_path / "s", "--seed", "4294967295", "--json"]
    for trials in ("1", "2"):
        r = cli(*args, "--trials", trials)
        assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["trials"]) == 2


def test_a_study_whose_choices_were_stored_otherwise_is_refused_not_a_traceback(cli, tiny_data_dir, tmp_path):
    import optuna

    from fmnist.sweep.study import open_study

    root = tmp_path / "s"
    cfg = SweepConfig("mlp", (parse_param("flip=true,false"),), trials=2, limit=100, dataset="idx", root=root)
    study = open_study(cfg)  # then a trial as an older version stored it: the strings "True" and "False"
    study.add_trial(optuna.trial.create_trial(
        params={"augment.flip": "False"}, value=0.5,
        distributions={"augment.flip": optuna.distributions.CategoricalDistribution(("True", "False"))}))
    r = cli("sweep", "mlp", "--param", "flip=true,false", "--limit", "100", "--data-dir", tiny_data_dir,
            "--dataset", "idx", "--root", root, "--trials", "2")
    assert r.exit_code == 2 and "drew augment.flip from ['True', 'False']" in r.stderr and "--name" in r.stderr, r.stderr


def test_a_finished_sweep_reports_again_without_its_data(cli, tiny_data_dir, tmp_path):
    args = ["sweep", "mlp", "--param", "epochs=1", "--limit", "100", "--dataset", "idx", "--root", tmp_path / "s",
            "--trials", "1", "--json"]
    r = cli(*args, "--data-dir", tiny_data_dir)
    assert r.exit_code == 0, r.stderr
    r = cli(*args, "--data-dir", tmp_path / "gone")  # nothing left to run: only the study is read
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["trials"]) == 1
    r = cli(*[a if a != "1" else "2" for a in args], "--data-dir", tmp_path / "gone")  # one more to run: refused
    assert r.exit_code == 2 and "does not exist" in r.stderr, r.stderr


def test_ray_addresses_are_checked_only_where_they_are_host_and_port():
    from fmnist.runtime import check_ray_address

    for address in ("auto", "local", "anyscale://my-cluster"):
        check_ray_address(address)  # left to Ray
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1", "[::1]:1"):
        with pytest.raises(UsageError, match="nothing answers"):
            check_ray_address(address, timeout_s=2)
    for address in ("nohost", "host:port", "ray://host", "host:70000"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            check_ray_address(address)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the trial is made by hand, not by optimize
def test_a_trial_whose_process_died_is_marked_failed_when_the_study_is_opened(tmp_path, monkeypatch):
    # A sweep killed outright (kill -9) left its trial "running" in every later table.
    import time

    from fmnist.sweep import study as study_mod

    cfg = SweepConfig("mlp", (parse_param("epochs=1,2"),), trials=2, limit=100, dataset="idx", root=tmp_path / "s")
    study = study_mod.open_study(cfg)
    trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)  # its process beat once, then was killed
    assert study_mod.open_study(cfg).trials[0].state.name == "RUNNING"  # within STALE_S it may be beating elsewhere
    monkeypatch.setattr(study_mod, "STALE_S", 1)
    time.sleep(2.5)  # the database keeps whole seconds
    assert study_mod.open_study(cfg).trials[0].state.name == "FAIL"
