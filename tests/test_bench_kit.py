"""benchmarks.kit's docs/results.md sections: a table that grows run by run keeps the rows it did not re-measure;
result rows recorded before a setting existed still count as measured with the recipe."""

import pytest

from benchmarks.kit import current, merge_tables, update_section
from fmnist.recipes import get_recipe

OLD = """Intro.

| recipe | runs | test % |
|---|---:|---:|
| `best` | 3 | 94.75 |
| `fast` | 3 | 92.55 |

Machine: AMD EPYC."""

NEW = """Intro.

| recipe | runs | test % |
|---|---:|---:|
| `sota` | 1 | 95.62 |
| `fast` | 5 | 92.80 |

Machine: Intel Xeon."""


def test_rows_not_measured_again_are_kept_and_measured_ones_replaced_in_place():
    merged = merge_tables(OLD, NEW, keep=1).splitlines()
    rows = [line for line in merged if line.startswith("| `")]
    assert rows == ["| `best` | 3 | 94.75 |", "| `fast` | 5 | 92.80 |", "| `sota` | 1 | 95.62 |"]
    assert merged[-3:] == ["Machine: Intel Xeon.", "", "Machine: AMD EPYC."]
    assert merged.count("Intro.") == 1


def test_the_key_is_the_leading_cells():
    old = "| a | b | x |\n|---|---|---|\n| 1 | cpu | old |\n| 1 | gpu | old |"
    new = "| a | b | x |\n|---|---|---|\n| 1 | cpu | new |"
    assert merge_tables(old, new, keep=2).splitlines()[2:] == ["| 1 | cpu | new |", "| 1 | gpu | old |"]
    assert merge_tables(old, new, keep=1).splitlines()[2:] == ["| 1 | cpu | new |"]


def test_a_section_without_a_table_is_replaced(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# R\n\n<!-- s:start -->\nno table\n<!-- s:end -->\n\ntail\n")
    update_section("s", NEW, path=doc, keep=1)
    text = doc.read_text()
    assert "no table" not in text and "`sota`" in text and text.endswith("tail\n")
    update_section("s", OLD, path=doc, keep=1)  # merged: sota kept, fast replaced in place, best added
    text = doc.read_text()
    assert text.count("<!-- s:start -->") == 1
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")] == \
        ["`sota`", "`fast`", "`best`"]


def test_footers_do_not_pile_up_and_go_with_the_rows_they_describe():
    old = "| a | x |\n|---|---|\n| 1 | old |\n| 2 | old |\n\nMachine: A. Load average before the runs: 0.1.\n\nNote on 2."
    new = "| a | x |\n|---|---|\n| 1 | new |\n\nMachine: A. Load average before the runs: 1.5."
    merged = merge_tables(old, new, keep=1)
    assert merged.count("Machine: A.") == 1 and "1.5." in merged and merged.endswith("Note on 2.")
    again = merge_tables(merged, new.replace("1.5", "0.7"), keep=1)
    assert again.count("Machine: A.") == 1 and "0.7." in again and "| 2 | old |" in again
    everything = new.replace("| 1 | new |", "| 1 | new |\n| 2 | new |")
    assert merge_tables(old, everything, keep=1) == everything  # every old row measured again: no old footers


def test_a_changed_header_or_duplicate_keys_are_not_merged():
    old = "| a | x |\n|---|---|\n| 1 | old |"
    wider = "| a | x | y |\n|---|---|---|\n| 2 | new | 0 |"
    assert merge_tables(old, wider, keep=1) == wider
    with pytest.raises(ValueError, match="share"):
        merge_tables(old, "| a | x |\n|---|---|\n| 2 | new |\n| 2 | newer |", keep=1)


def test_a_row_recorded_before_a_setting_existed_is_still_current():
    config = get_recipe("sota").to_dict()
    config["optimizer"].pop("whiten_bias_epochs")  # settings added later, at their defaults
    config["augment"].pop("resize")
    assert current({"recipe": "sota", "recipe_config": config})
    changed = get_recipe("sota").to_dict()
    changed["epochs"] += 1
    assert not current({"recipe": "sota", "recipe_config": changed})
    gone = dict(get_recipe("sota").to_dict(), removed_setting=1)
    assert not current({"recipe": "sota", "recipe_config": gone})


def test_validating_on_the_test_set_or_not_at_all_trains_the_same_model():
    # benchmarks.reproduce_seeds trains `baseline` (the registry: validation="test") with no per-epoch
    # validation: the same model, so its rows stay current; training on a held-out split does not.
    baseline = get_recipe("baseline")
    assert baseline.validation == "test"
    assert current({"recipe": "baseline", "recipe_config": baseline.replace(validation="none").to_dict()})
    assert not current({"recipe": "baseline", "recipe_config": baseline.replace(validation="holdout").to_dict()})


def test_a_script_stops_on_a_bad_value_with_a_sentence_not_a_traceback(capsys):
    import argparse

    from benchmarks.kit import positive, run
    from fmnist.errors import UsageError

    assert positive("3") == 3
    for text in ("0", "-5", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive(text)

    def main():
        raise UsageError("unknown recipe 'nosuch'")

    with pytest.raises(SystemExit) as stopped:
        run(main)
    assert stopped.value.code == 2 and capsys.readouterr().err == "error: unknown recipe 'nosuch'\n"
