"""The photo pipeline on generated photos: each step, the auto mode, folders, confidence, fine-tuning."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.data.splits import holdout_split
from fmnist.errors import DataError
from fmnist.imaging import looks_like_dataset, open_image, prepare
from fmnist.imaging.folder import class_aliases, folder_classes, folder_dataset, match_classes, read_image_folder
from fmnist.imaging.photo import estimate_background, foreground_mask, otsu_threshold, photo_steps, working_array
from fmnist.recipes import get_recipe

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def article(size=(640, 480), box=(260, 140, 380, 400), fg=(40, 30, 90), bg=(250, 250, 247), noise=2.0, seed=0) -> Image.Image:
    """A photo: a textured article (a tall rectangle with a sleeve) in `box` (left, top, right, bottom) on `bg`."""
    rng = np.random.default_rng(seed)
    w, h = size
    canvas = np.ones((h, w, 3), np.float32) * np.array(bg, np.float32)
    left, top, right, bottom = box
    texture = (rng.random((bottom - top, right - left, 1)) * 30).astype(np.float32)
    canvas[top:bottom, left:right] = np.array(fg, np.float32) + texture
    canvas[top : top + 40, left - 50 : left] = np.array(fg, np.float32)  # a sleeve: not mirror-symmetric
    canvas += rng.normal(0, noise, canvas.shape)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def test_a_dark_article_on_white_comes_out_light_on_black_centred_longest_edge_28():
    steps = photo_steps(article())
    img = steps.image
    assert img.shape == (28, 28) and img.dtype == np.uint8 and steps.light_background
    rows, cols = np.flatnonzero(img.max(1) > 0), np.flatnonzero(img.max(0) > 0)
    assert rows[-1] - rows[0] + 1 == 28  # the longest edge (the height) fills the frame
    width = cols[-1] - cols[0] + 1
    assert 12 <= width <= 18 and abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1  # aspect kept, centred
    assert img.max() == 255 and img[:, : cols[0]].max() == 0 and img[:, cols[-1] + 1 :].max() == 0  # black around
    # The mask's box holds the article and its sleeve (in the 256-px working copy: 640 -> 256 is a factor 2.5).
    top, left, bottom, right = steps.box
    assert abs(top - 140 / 2.5) <= 3 and abs(bottom - 400 / 2.5) <= 3 and abs(left - 210 / 2.5) <= 3


def test_each_step_on_its_own():
    rgb = working_array(article(size=(200, 100), box=(80, 20, 120, 80)))
    assert rgb.shape == (100, 200, 3) and rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1
    background = estimate_background(rgb)
    assert np.allclose(background, np.array([250, 250, 247]) / 255, atol=0.02)
    mask = foreground_mask(rgb, background)
    assert mask[50, 100] and not mask[5, 5] and not mask[50, 190]
    values = np.concatenate([np.full(100, 0.1), np.full(100, 0.9)])
    assert 0.1 < otsu_threshold(values) < 0.9


def test_an_uneven_background_is_background():
    photo = np.asarray(article(size=(300, 300), box=(120, 60, 180, 240)), np.float32)
    photo *= np.linspace(0.85, 1.0, 300)[None, :, None]  # a light gradient, darker on the left
    steps = photo_steps(Image.fromarray(photo.astype(np.uint8)))
    top, left, bottom, right = steps.box
    assert left > 50 and right < 200  # the dark left side was not taken for the article


@pytest.mark.parametrize("side", ["left", "corner"])
def test_a_shadow_along_part_of_the_border_stays_background(side):
    # A darker band (a shadow) over part of the border: the first fit, from every border pixel, takes it in.
    photo = np.asarray(article(size=(300, 300), box=(120, 80, 180, 220)), np.float32)
    shade = np.ones((300, 300), np.float32)
    ramp = np.linspace(0.7, 1.0, 90)
    if side == "left":
        shade[:, :90] = ramp[None, :]
    else:
        shade[:90, :90] = np.minimum(ramp[None, :], ramp[:, None])
    steps = photo_steps(Image.fromarray((photo * shade[..., None]).clip(0, 255).astype(np.uint8)))
    top, left, bottom, right = steps.box  # the article and its sleeve: rows 68-188, columns 60-154 (working pixels)
    assert left >= 55 and top >= 60, steps.box


def test_a_transparent_cutout_is_an_article_on_white():
    rgba = np.zeros((300, 200, 4), np.uint8)
    rgba[50:250, 60:140] = (30, 30, 30, 255)  # an opaque dark article; the rest fully transparent (RGB 0: black!)
    steps = photo_steps(Image.fromarray(rgba, "RGBA"))
    assert steps.light_background and steps.image.max() == 255
    assert steps.image[:, 0].max() == 0 and steps.image[:, -1].max() == 0  # narrower than tall: black sides


def test_a_light_article_on_a_dark_background_is_not_negated():
    steps = photo_steps(article(fg=(200, 190, 180), bg=(25, 25, 30)))
    assert not steps.light_background
    img = steps.image
    assert img[14, 14] > 100 and img[0, 0] == 0


def test_exif_orientation_is_applied_before_anything_else():
    photo = article(size=(480, 640), box=(140, 260, 400, 380))  # a wide article in a tall frame
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", exif=exif, quality=90)
    img = open_image(buf.getvalue(), name="phone.jpg")
    assert img.size == (640, 480)  # turned upright
    assert prepare(img, "photo").mode == "photo"


def test_auto_leaves_a_dataset_image_byte_identical(tmp_path):
    from fmnist.imaging import load_image

    rng = np.random.default_rng(1)
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 8:20] = rng.integers(50, 255, (20, 12))
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    result = prepare(open_image(path), "auto")
    assert result.mode == "dataset" and np.array_equal(result.image, img) and np.array_equal(load_image(path, "auto"), img)
    assert looks_like_dataset(Image.fromarray(img).resize((56, 56)))  # small, grayscale, dark border
    assert not looks_like_dataset(article())


def test_a_blank_image_is_a_clear_error():
    for blank in (Image.new("RGB", (300, 200), (255, 255, 255)), Image.new("L", (64, 80), 128)):
        with pytest.raises(DataError, match="found no article"):
            photo_steps(blank)


def test_class_folder_names_forgive_case_punctuation_and_take_indices():
    match = match_classes(["t-shirt_top", "TROUSER", "pull over", "3", "ankle-boot", "sandal"], FASHION)
    assert match == {"t-shirt_top": 0, "TROUSER": 1, "pull over": 2, "3": 3, "ankle-boot": 9, "sandal": 5}
    assert class_aliases(FASHION)["tshirt"] == 0 and class_aliases(FASHION)["top"] == 0
    with pytest.raises(DataError, match="'hats' match none of the classes"):
        match_classes(["hats", "bag"], FASHION)


def test_a_class_named_by_a_number_is_not_taken_for_another_class_index():
    # Classes "1", "2", "3": folder "1" is class "1" (index 0), not the class at index 1.
    assert match_classes(["1", "2", "3"], ["1", "2", "3"]) == {"1": 0, "2": 1, "3": 2}
    with pytest.raises(DataError, match="'0' match none"):  # classes named by numbers take no index
        match_classes(["0"], ["1", "2", "3"])
    # Two folders of one class were merged without a word.
    with pytest.raises(DataError, match="'8' and 'Bag' both name Bag; put each class's images in one folder"):
        match_classes(["8", "Bag", "Shirt"], FASHION)


def photo_folder(root, per_class=2, classes=("Trouser", "Bag"), unreadable=True):
    """DIR/<class>/*.jpg of generated photos: tall articles for Trouser, wide ones for Bag."""
    for c, name in enumerate(classes):
        folder = root / name.lower()
        folder.mkdir(parents=True)
        for i in range(per_class):
            box = (280, 60, 360, 420) if c == 0 else (160, 180, 480, 320)
            article(box=box, seed=10 * c + i).save(folder / f"{i}.jpg", quality=85)
    if unreadable:
        (root / classes[0].lower() / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def test_an_image_folder_reads_through_the_photo_pipeline_and_skips_what_it_cannot_read(tmp_path):
    folder = read_image_folder(photo_folder(tmp_path / "photos"), FASHION)
    assert folder.images.shape == (4, 28, 28) and folder.labels.tolist() == [8, 8, 1, 1]
    assert folder.modes == ["photo"] * 4 and len(folder.thumbnails) == 4
    assert len(folder.skipped) == 1 and "broken.jpg" in folder.skipped[0][0]
    ds = folder_dataset(tmp_path / "photos", FASHION)
    assert len(ds.train) + len(ds.test) == 4 and len(ds.test) >= 1 and len(ds.skipped) == 1


def test_an_image_folder_says_what_it_left_out_and_why_it_cannot_split(tmp_path):
    photos = photo_folder(tmp_path / "photos", per_class=2, unreadable=False)
    (photos / "bag" / "more").mkdir()
    article(seed=7).save(photos / "bag" / "more" / "x.jpg")
    folder = read_image_folder(photos, FASHION)
    assert len(folder.labels) == 4 and [p for p, _ in folder.skipped] == [str(photos / "bag" / "more")]
    # Files not named as images and a class folder holding none are named too (they were left out in silence).
    (photos / "trouser" / "IMG_2.heic").write_bytes(b"heic")
    (photos / "coat").mkdir()
    why = dict(read_image_folder(photos, FASHION).skipped)
    assert "HEIC photos are not read" in why[str(photos / "trouser" / "IMG_2.heic")]
    assert "a class folder with no image files" in why[str(photos / "coat")] and len(why) == 3
    article(seed=8).save(photos / "stray.jpg")  # beside the class folders: no class to give it
    why = dict(read_image_folder(photos, FASHION).skipped)
    assert "not in a class folder" in why[str(photos / "stray.jpg")] and len(why) == 4
    with pytest.raises(DataError, match="is a file"):
        read_image_folder(photos / "bag" / "0.jpg", FASHION)
    one_each = photo_folder(tmp_path / "one", per_class=1, unreadable=False)
    with pytest.raises(DataError, match="every class holds one image"):
        folder_dataset(one_each, FASHION)
    (tmp_path / "halves" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="has train/ but no test/"):
        folder_dataset(tmp_path / "halves", FASHION)


def test_a_held_out_split_trains_every_class_and_checks_every_class_it_can():
    labels = np.array([0] * 10 + [1] * 2 + [2])  # 10 images, 2, and 1
    tr, va = holdout_split(labels, 0.2, seed=0)
    assert np.bincount(labels[va], minlength=3).tolist() == [2, 1, 0]
    assert np.bincount(labels[tr], minlength=3).tolist() == [8, 1, 1]


def tiny_fast(epochs=1):
    return get_recipe("fast").replace(epochs=epochs, batch_size=32, model_args={"stem": 8, "widths": [8, 16], "blocks": [0, 0]})


def test_evaluate_images_prints_the_report_and_a_montage(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--out", run).exit_code == 0
    # The tiny dataset's classes are "0".."9": folders named by index.
    photos = photo_folder(tmp_path / "photos", classes=("1", "8"))
    r = cli("evaluate", run, "--images", photos, "--out", tmp_path / "eval", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["count"] == 4 and len(result["skipped"]) == 1 and result["preprocess"] == {"photo": 4}
    assert 0 <= result["accuracy"] <= 1 and (tmp_path / "eval" / "montage.png").is_file()
    assert all("confident" in p for p in result["predictions"])
    text = cli("evaluate", run, "--images", photos, "--out", tmp_path / "eval2")
    assert text.exit_code == 0 and "accuracy" in text.stdout and "precision" in text.stdout and "skipped" in text.stderr


def test_predict_reports_the_mode_and_confidence_and_skips_a_blank_image(cli, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--val", "holdout",
               "--out", run).exit_code == 0
    meta = json.loads(json.dumps(__import__("fmnist.checkpoint", fromlist=["read_meta"]).read_meta(run).to_dict()))
    assert 0 < meta["confidence_threshold"] <= 1  # chosen on the held-out split
    article().save(tmp_path / "shirt.jpg")
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    r = cli("predict", run, tmp_path / "shirt.jpg", tmp_path / "blank.png", "--json")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    first, second = json.loads(r.stdout)
    assert first["preprocess"] == "photo" and isinstance(first["confident"], bool) and len(first["probabilities"]) == 10
    assert second["path"].endswith("blank.png") and "found no article" in second["error"]
    # In the order given, a failure where its file stands (as the web service answers).
    (tmp_path / "empty").mkdir()
    r = cli("predict", run, tmp_path / "blank.png", tmp_path / "shirt.jpg", tmp_path / "empty", "--json")
    assert r.exit_code == 2
    assert [("error" in row, row["path"].rsplit("/", 1)[-1]) for row in json.loads(r.stdout)] == [
        (True, "blank.png"), (False, "shirt.jpg"), (True, "empty")]  # a folder of no images is named too
    # A file of a folder not named as an image is passed over with a note, not in silence, and fails nothing.
    shirts = tmp_path / "shirts"
    shirts.mkdir()
    article().save(shirts / "shirt.jpg")
    (shirts / "notes.txt").write_text("bought in May")
    r = cli("predict", run, shirts, "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1
    assert "note: 1 file passed over (notes.txt: not named as an image (images end in .png" in r.stderr
    # So are a HEIC photo, a link to nothing and a folder inside.
    (shirts / "IMG_1.HEIC").write_bytes(b"heic")
    (shirts / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (shirts / "more").mkdir()
    r = cli("predict", run, shirts, "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1
    assert "note: 4 files passed over (IMG_1.HEIC: HEIC photos are not read: save them as JPEG; gone.png: a link " \
           "to nothing; more: a folder inside" in r.stderr, r.stderr


def test_init_starts_from_a_model_and_refuses_another_architecture(cli, tiny_data_dir, tmp_path):
    from fmnist.checkpoint import load_model
    from fmnist.config import RunConfig, TrainOptions
    from fmnist.pipeline import starting_weights

    base = tmp_path / "base"
    assert cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--out", base).exit_code == 0
    cfg = RunConfig(recipe=get_recipe("mlp").replace(epochs=1), options=TrainOptions(device="cpu"), init=base)
    state, meta = starting_weights(cfg)
    model, _ = load_model(base)
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in model.state_dict().items())
    tuned = tmp_path / "tuned"
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--epochs", "1", "--init", base,
            "--lr", "0", "--out", tuned)
    assert r.exit_code == 0, r.stderr
    # The report says where it started and what the accuracy was measured on (a reader took a fine-tuned figure on
    # a few held-out photos for one on the whole test set).
    report = (tuned / "report.md").read_text()
    assert f"| fine-tuned | from the weights of {base} |" in report and " test images |" in report
    assert "test images)" in r.stdout
    # lr 0: the fine-tuned weights are the starting ones.
    after, _ = load_model(tuned)
    assert all(np.array_equal(after.state_dict()[k].numpy(), v.numpy()) for k, v in model.state_dict().items())
    refused = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "baseline", "--init", base, "--out", tmp_path / "x")
    assert refused.exit_code == 2 and "builds 'baseline'" in refused.stderr and not (tmp_path / "x").exists()


def test_fine_tuning_on_an_image_folder_is_a_normal_run(cli, tmp_path):
    photos = photo_folder(tmp_path / "photos", per_class=3, classes=("Trouser", "Bag"), unreadable=False)
    run = tmp_path / "tuned"
    r = cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run, "--json")
    assert r.exit_code == 0, r.stderr
    assert (run / "model.safetensors").is_file() and (run / "report.md").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["dataset"] == "folder" and config["options"]["data_source"] == "folder"
    # The run is scored again on the images it held out, never on the ones it trained on.
    e = cli("evaluate", run, "--json")
    assert e.exit_code == 0, e.stderr
    result = json.loads(e.stdout)
    assert result["matches_recorded"] and result["test_accuracy"] == result["recorded_test_accuracy"]
    assert result["report"]["weighted_avg"]["support"] == 2  # 1 of each class's 3 held out
    # From another working directory too: the run stored its folder's absolute path.
    assert Path(config["options"]["data_dir"]).is_absolute()
    whole = cli("evaluate", run, "--images", photos, "--out", tmp_path / "eval", "--json")
    assert whole.exit_code == 0, whole.stderr
    assert json.loads(whole.stdout)["count"] == 6
    # The same folder named with --data-dir is the run's own: its held-out part, not every image.
    named = json.loads(cli("evaluate", run, "--data-dir", photos, "--json").stdout)
    assert named["test_accuracy"] == result["test_accuracy"] and named["report"]["weighted_avg"]["support"] == 2
    assert named["same_data_as_training"] is True and not named["warnings"]
    # Images added since: the held-out part is drawn again, and the figure is said not to be comparable.
    article(box=(160, 180, 480, 320), seed=99).save(photos / "bag" / "new.jpg")
    changed = cli("evaluate", run, "--json")
    assert changed.exit_code == 0, changed.stderr
    (warning,) = json.loads(changed.stdout)["warnings"]
    assert json.loads(changed.stdout)["matches_recorded"] is False  # other images cannot repeat the figure
    assert "holds other images than when" in warning and "not comparable" in warning
    text = " ".join(cli("evaluate", run).stdout.split())
    assert "held out as it is now" in text and "held out at training" not in text  # the line agrees with the warning
    # The folder moved: without --data-dir it is named as gone; with its new place, its held-out part is scored.
    (photos / "bag" / "new.jpg").unlink()
    photos.rename(tmp_path / "moved")
    gone = cli("evaluate", run)
    assert gone.exit_code == 2 and "not there any more" in gone.stderr and "--data-dir" in gone.stderr, gone.stderr
    moved = json.loads(cli("evaluate", run, "--data-dir", tmp_path / "moved", "--json").stdout)
    assert moved["matches_recorded"] and moved["same_data_as_training"] is True and not moved["warnings"]


@pytest.mark.parametrize("low, high", [(200, 250), (5, 55)])
def test_a_transparent_cut_out_stands_out_whether_light_or_dark(low, high):
    # A trouser-like block, shaded from `low` to `high`, on full transparency. A light one composited onto white
    # (as every cut-out was) kept only its darker shades: a dim article, bright where it was darkest.
    rgba = np.zeros((120, 120, 4), np.uint8)
    shade = np.linspace(low, high, 80).astype(np.uint8)[:, None]
    rgba[20:100, 40:80, :3] = shade[..., None]
    rgba[20:100, 40:80, 3] = 255
    rgba[50:100, 58:62, 3] = 0  # between the legs
    image = photo_steps(Image.fromarray(rgba, "RGBA")).image
    inside = np.concatenate([image[2:26, 10:13], image[2:26, 15:18]])  # the legs once fitted to 28x28
    assert inside.mean() > 190 and inside.min() > 150, inside  # bright throughout (white backdrop: mean 142, min 46)
    assert image[:, :4].max() == 0 and image[:, -4:].max() == 0  # the background is black


def test_a_light_photo_padded_with_transparency_keeps_its_polarity():
    # A product photo (light background, dark article) centred in transparent padding: the padding takes the
    # photo's background colour, so the article, not the photo's rectangle, is what is found.
    rgba = np.zeros((160, 240, 4), np.uint8)
    rgba[20:140, 60:180] = (245, 245, 245, 255)
    rgba[40:120, 100:140, :3] = 30
    image = photo_steps(Image.fromarray(rgba, "RGBA")).image
    assert image[10:18, 12:16].mean() > 200  # the article, light on black
    assert image[:, :5].max() == 0 and image[:, -5:].max() == 0


def test_cv_and_sweep_take_an_image_folder(cli, tmp_path):
    # Their help lists --dataset folder; both failed with "unknown dataset 'folder'".
    photos = photo_folder(tmp_path / "photos", per_class=5, classes=("Trouser", "Bag"), unreadable=False)
    r = cli("cv", "mlp", "--folds", "2", "--epochs", "1", "--dataset", "folder", "--data-dir", photos,
            "--out", tmp_path / "cv", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    # The folds are the 8 images `fmnist train` trains on; its 2 held-out ones stay out.
    assert result["data"]["name"] == "folder" and result["data"]["images"] == 8 and result["data"]["checksum"]
    assert [f["held_out_size"] for f in result["folds"]] == [4, 4]
    (photos / "bag" / "notes.txt").write_text("not an image")
    s = cli("sweep", "mlp", "--param", "epochs=1,2", "--trials", "2", "--dataset", "folder", "--data-dir", photos,
            "--root", tmp_path / "sweeps", "--json")
    assert s.exit_code == 0, s.stderr
    assert "skipped: " in s.stderr and "notes.txt" in s.stderr  # listed as `train` and `cv` list it
    out = json.loads(s.stdout)
    assert len(out["trials"]) == 2 and f"--dataset folder --data-dir {photos}" in out["best_command"]
    # The same sweep on another folder is not continued as if it were this one's.
    other = photo_folder(tmp_path / "other", per_class=5, classes=("Trouser", "Bag"), unreadable=False)
    again = cli("sweep", "mlp", "--param", "epochs=1,2", "--trials", "3", "--dataset", "folder", "--data-dir", other,
                "--root", tmp_path / "sweeps")
    assert again.exit_code == 2 and "other settings (data_dir" in again.stderr, again.stderr


def test_a_folder_run_exports_and_serves_with_its_own_held_out_images(cli, tmp_path):
    pytest.importorskip("onnxruntime")
    from fmnist.export import load_predictor
    from fmnist.serve.card import card_for

    photos = photo_folder(tmp_path / "photos", per_class=3, classes=("Trouser", "Bag"), unreadable=False)
    run = tmp_path / "run"
    assert cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run).exit_code == 0
    # Export checks the ONNX model on the folder's held-out images, not random ones.
    r = cli("export", run, "--out", tmp_path / "m.onnx", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["verification"]["images"] == "folder test"
    # The card's gallery holds those images; recall is null for the eight classes with no test image.
    card, note = card_for(load_predictor(run), run)
    assert note is None and len(card.gallery) == 2, note
    recall = card.card["recall"]
    assert sum(r is None for r in recall) == 8 and all(recall[i] is not None for i in (1, 8))


def test_evaluating_a_run_of_a_train_and_test_folder_repeats_its_test_figure(cli, tmp_path):
    # It was scored like `--images DIR/test`: no comparison with the figure recorded at training.
    photos = tmp_path / "halves"
    photo_folder(photos / "train", per_class=3, unreadable=False)
    photo_folder(photos / "test", per_class=2, unreadable=False)
    run = tmp_path / "run"
    assert cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run).exit_code == 0
    r = cli("evaluate", run, "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["same_data_as_training"] is True and result["matches_recorded"] is True, result
    assert sum(row["support"] for row in result["report"]["per_class"]) == 4  # test/'s images only
    text = cli("evaluate", run)
    assert f"on 4 images of {photos / 'test'}" in " ".join(text.stdout.split()) and "matches the" in text.stdout
    # A test/ image replaced since: scored, with a warning that the figure is not comparable.
    article(box=(300, 80, 340, 400), seed=99).save(photos / "test" / "trouser" / "0.jpg", quality=85)
    changed = cli("evaluate", run, "--json")
    assert changed.exit_code == 0 and json.loads(changed.stdout)["same_data_as_training"] is False
    assert "not comparable" in changed.stderr and "drawn again" not in changed.stderr


@pytest.mark.parametrize("size", [28, 60])
def test_a_small_dark_cut_out_is_a_photo_not_a_black_dataset_image(size):
    # Flattened onto the dataset's black, a black article on transparency became an all-black input, and was
    # still given a class; a fully transparent image likewise.
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[size // 5 : -size // 5, size // 3 : -size // 3, 3] = 255
    prepared = prepare(Image.fromarray(rgba, "RGBA"), "auto")
    assert prepared.mode == "photo" and prepared.image.max() == 255
    with pytest.raises(DataError, match="found no article"):
        prepare(Image.fromarray(np.zeros((size, size, 4), np.uint8), "RGBA"), "auto")
    # An opaque image with an alpha channel is still taken as it is.
    gray = np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)
    same = prepare(Image.fromarray(gray).convert("LA"), "auto")
    assert same.mode == "dataset" and np.array_equal(same.image, gray)


def test_a_folder_of_classes_of_your_own_trains_a_model_of_those_classes(cli, tmp_path):
    from fmnist.imaging.folder import folder_classes

    photos = photo_folder(tmp_path / "shapes", per_class=3, classes=("Tall", "Wide"), unreadable=False)
    assert folder_classes(photos) == ("tall", "wide")
    assert len(folder_classes(photo_folder(tmp_path / "fashion", per_class=1, unreadable=False))) == 10
    run = tmp_path / "run"
    r = cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run)
    assert r.exit_code == 0, r.stderr
    report = json.loads((run / "metrics.json").read_text())["report"]
    assert [row["class"] for row in report["per_class"]] == ["tall", "wide"]
    # The page says how many images it trained on (the recipe's description speaks of Fashion-MNIST's 60,000).
    assert "| training images | 4 |" in (run / "report.md").read_text()
    p = cli("predict", run, photos / "wide" / "0.jpg", "--json")
    assert p.exit_code == 0 and json.loads(p.stdout)[0]["name"] in ("tall", "wide"), p.stderr
    e = cli("evaluate", run, "--json")
    assert e.exit_code == 0 and json.loads(e.stdout)["matches_recorded"], e.stderr
    # Scoring the training folder whole says most of it was trained on.
    whole = cli("evaluate", run, "--images", photos, "--out", tmp_path / "eval")
    assert whole.exit_code == 0 and "is the folder" in whole.stderr and "trained on" in whole.stderr, whole.stderr
    mixed = cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--mix", "10", "--out", tmp_path / "m")
    assert mixed.exit_code == 2 and "must be Fashion-MNIST's" in mixed.stderr, mixed.stderr


def test_classes_of_your_own_are_matched_by_their_names(tmp_path):
    from fmnist.imaging.folder import class_note, folder_classes

    # Numbers of their own take no index (2/ was labelled class '10'); names in any script are names.
    with pytest.raises(DataError, match="'2' match none of the classes"):
        match_classes(["0", "1", "2"], ("0", "1", "10"))
    assert match_classes(["猫", "犬"], ("猫", "犬")) == {"猫": 0, "犬": 1}  # both simplified to '' and clashed
    assert match_classes(["3"], [str(i) for i in range(10)]) == {"3": 3}  # MNIST's digits are still themselves
    # A test/ class that train/ lacks is named as such.
    for half, names in (("train", ("Tall", "Wide")), ("test", ("Tall", "Wide", "Round"))):
        photo_folder(tmp_path / "halves" / half, per_class=1, classes=names, unreadable=False)
    with pytest.raises(DataError, match="has class folders .* lacks \\(round\\)"):
        folder_classes(tmp_path / "halves")
    # Training says whose classes it took, and a name close to a Fashion-MNIST class is pointed out.
    assert class_note(("shirt", "trousers")).startswith("classes: shirt, trousers, named by the folders")
    assert "'trousers' is close to Fashion-MNIST's 'Trouser'" in class_note(("shirt", "trousers"))
    assert "close to" not in class_note(("circle", "square"))
    assert class_note(FASHION) == "classes: Fashion-MNIST's 10, the folders named after them"


def test_a_bare_folder_model_file_is_scored_on_its_held_out_part_only_where_the_digest_says_so(cli, tmp_path):
    photos = photo_folder(tmp_path / "shapes", per_class=4, classes=("Tall", "Wide"), unreadable=False)
    run = tmp_path / "run"
    assert cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run,
               "--seed", "3").exit_code == 0
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(photos, copy)
    # The run directory knows its seed: a copy of its folder is scored on the part it held out.
    held = json.loads(cli("evaluate", run, "--data-dir", copy, "--json").stdout)
    assert held["matches_recorded"] and held["same_data_as_training"] is True
    # The model file does not: seed 0 draws another part, so every image is scored, with a note saying why.
    bare = cli("evaluate", run / "model.safetensors", "--data-dir", copy, "--json")
    assert bare.exit_code == 0 and "images it trained on are among them" in bare.stderr, bare.stderr
    assert json.loads(bare.stdout)["count"] == 8
    # Nor does the service measure the card on a part it cannot tell was held out.
    from fmnist.export import load_predictor
    from fmnist.serve.card import card_for

    card, note = card_for(load_predictor(run / "model.safetensors"), run / "model.safetensors", copy)
    assert note and "not the image folder the model trained on" in note and card.card["confusion_matrix"] is None


def test_a_class_of_your_own_needs_images_and_a_classifier_needs_two(cli, tmp_path):
    photos = photo_folder(tmp_path / "shapes", per_class=3, classes=("Tall", "Wide"), unreadable=False)
    (photos / "zzz").mkdir()  # an empty folder: listed as skipped, not made a class with no image
    ds = folder_dataset(photos, folder_classes(photos))
    assert ds.classes == ("tall", "wide") and any("no image files" in why for _, why in ds.skipped)
    one = photo_folder(tmp_path / "one", per_class=3, classes=("Tall",), unreadable=False)
    (one / "empty").mkdir()
    with pytest.raises(DataError, match="holds 1 class folder with images; a classifier tells 2 classes or more"):
        folder_classes(one)


def test_a_two_class_model_without_a_threshold_of_its_own_is_not_always_confident():
    from fmnist.inference import confidence_threshold, default_confidence

    # The top of two probabilities is never below 0.5, so 0.5 flagged nothing.
    assert default_confidence(2) == 0.75 and default_confidence(10) == 0.5 and default_confidence(3) == 0.5
    assert confidence_threshold(np.zeros((0, 2))) == 0.75


def test_fine_tuning_onto_data_of_another_class_count_says_so(cli, tmp_path, tiny_data_dir):
    photos = photo_folder(tmp_path / "shapes", per_class=3, classes=("Tall", "Wide"), unreadable=False)
    run = tmp_path / "run"
    assert cli("train", "mlp", "--dataset", "folder", "--data-dir", photos, "--epochs", "1", "--out", run).exit_code == 0
    r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", "--init", run, "--out", tmp_path / "x")
    assert r.exit_code == 2 and "tells 2 classes apart (tall, wide), but idx has 10" in r.stderr, r.stderr
    # A report of other data than Fashion-MNIST is not set beside the seed's Fashion-MNIST figure.
    assert "reported" not in (run / "report.md").read_text()
    assert json.loads((run / "metrics.json").read_text())["seed_reported"] is None


def test_folder_messages_fit_the_case():
    with pytest.raises(DataError, match="'Cat' and 'c-a-t' and 'cat' all name cat"):
        match_classes(["Cat", "c-a-t", "cat"], ("cat", "dog"))
    with pytest.raises(DataError) as refused:
        match_classes(["0"], ("1", "2", "x"))
    assert "index" not in str(refused.value)  # classes named by numbers take no index, so none is offered
