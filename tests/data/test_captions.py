"""Tests for t2i.data.captions on tiny CUB-200-2011 and Oxford-102 trees in the released layouts (Reed's text_c10)."""
import dataclasses
import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from t2i.data import captions, folder, images, shapes

CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")
# image_id -> (relative path, 1-based class, train?, (x, y, width, height), (height, width), solid RGB).
# Both image files and sizes vary; JPEGs only approximate their colour, PNGs keep it exactly.
CUB_IMAGES = {
    1: ("001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg", 1, True, (2.0, 3.0, 10.0, 8.0),
        (20, 24), (200, 30, 30)),
    2: ("001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg", 1, False, (1.0, 1.0, 6.0, 7.0),
        (16, 16), (30, 200, 30)),
    3: ("002.Laysan_Albatross/Laysan_Albatross_0001_545.png", 2, True, (4.5, 2.0, 12.0, 9.5),
        (20, 30), (10, 120, 250)),
    4: ("002.Laysan_Albatross/Laysan_Albatross_0002_1027.png", 2, False, (0.0, 0.0, 5.0, 5.0),
        (18, 12), (250, 250, 0)),
    5: ("003.Sooty_Albatross/Sooty_Albatross_0001_1071.png", 3, False, (3.0, 3.0, 4.0, 4.0),
        (12, 20), (90, 0, 90)),
    6: ("003.Sooty_Albatross/Sooty_Albatross_0002_796339.png", 3, True, (5.0, 4.0, 6.0, 10.0),
        (26, 22), (0, 60, 60)),
}
TRAIN_IDS, TEST_IDS = [1, 3, 6], [2, 4, 5]


def _key(rel_path):
    return os.path.splitext(rel_path)[0]


def _sentences(key, count=10):
    return [f"{os.path.basename(key)} sentence {k}." for k in range(count)]


def _write_image(path, pixels):
    pixels = np.asarray(pixels, np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    encoded = tf.io.encode_png(pixels) if path.endswith(".png") else tf.io.encode_jpeg(pixels, quality=100)
    with open(path, "wb") as f:
        f.write(encoded.numpy())


def _write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def cub(tmp_path):
    root = tmp_path / "CUB_200_2011"

    def index(name, rows):
        _write_text(str(root / name), "".join(" ".join(str(v) for v in row) + "\n" for row in rows))

    index("images.txt", [(i, v[0]) for i, v in CUB_IMAGES.items()])
    index("image_class_labels.txt", [(i, v[1]) for i, v in CUB_IMAGES.items()])
    index("train_test_split.txt", [(i, int(v[2])) for i, v in CUB_IMAGES.items()])
    index("bounding_boxes.txt", [(i, *v[3]) for i, v in CUB_IMAGES.items()])
    index("classes.txt", [(i + 1, name) for i, name in enumerate(CUB_CLASSES)])
    for rel_path, _, _, _, (height, width), rgb in CUB_IMAGES.values():
        _write_image(str(root / "images" / rel_path), np.broadcast_to(rgb, (height, width, 3)))
        _write_text(str(root / "text_c10" / (_key(rel_path) + ".txt")), "\n".join(_sentences(_key(rel_path))) + "\n")
    # Reed's files are not all tidy: padding, blank lines and more than 10 sentences keep the first 10.
    untidy = _sentences(_key(CUB_IMAGES[3][0]), 12)
    _write_text(str(root / "text_c10" / (_key(CUB_IMAGES[3][0]) + ".txt")),
                "\n\n".join(f"  {line} \t" for line in untidy) + "\n\n")
    return root


def _caption_path(cub, image_id):
    return cub / "text_c10" / (_key(CUB_IMAGES[image_id][0]) + ".txt")


def _elements(dataset):
    return list(dataset.as_numpy_iterator())


# ---------------------------------------------------------------------------------------
# CUB records


@pytest.mark.parametrize("split,ids", [("train", TRAIN_IDS), ("test", TEST_IDS), ("all", [1, 2, 3, 4, 5, 6])])
def test_cub_splits_keep_images_txt_order_with_keys_classes_and_boxes(cub, split, ids):
    corpus = captions.cub_corpus(cub, split=split)
    assert (corpus.name, len(corpus), corpus.captions_per_image) == ("cub", len(ids), 10)
    assert corpus.class_names == CUB_CLASSES
    assert [r.filename for r in corpus] == [_key(CUB_IMAGES[i][0]) for i in ids]
    assert [r.class_id for r in corpus] == [CUB_IMAGES[i][1] - 1 for i in ids]
    assert [r.bbox for r in corpus] == [CUB_IMAGES[i][3] for i in ids]
    assert [r.index for r in corpus] == [i - 1 for i in ids]  # line position in images.txt
    assert [r.image_path for r in corpus] == [str(cub / "images" / CUB_IMAGES[i][0]) for i in ids]


def test_cub_captions_are_stripped_in_file_order_and_cut_to_captions_per_image(cub):
    corpus = captions.cub_corpus(cub, split="train")
    for record in corpus:
        assert record.captions == tuple(_sentences(record.filename))
    assert captions.cub_corpus(cub, split="train", captions_per_image=3)[1].captions == (
        "Laysan_Albatross_0001_545 sentence 0.", "Laysan_Albatross_0001_545 sentence 1.",
        "Laysan_Albatross_0001_545 sentence 2.")


def test_cub_optional_files_boxes_and_class_names(cub, tmp_path):
    os.remove(cub / "bounding_boxes.txt")
    os.remove(cub / "classes.txt")
    # text_dir elsewhere, as when Reed's archive is unpacked beside CUB.
    os.rename(cub / "text_c10", tmp_path / "cvpr2016_cub_text")
    corpus = captions.cub_corpus(cub, text_dir=tmp_path / "cvpr2016_cub_text", split="test")
    assert [r.bbox for r in corpus] == [None, None, None]
    assert corpus.class_names == CUB_CLASSES  # from the image folders


def test_cub_all_needs_no_split_file(cub):
    os.remove(cub / "train_test_split.txt")
    assert len(captions.cub_corpus(cub, split="all")) == 6
    with pytest.raises(captions.CaptionFileNotFoundError, match=re.escape(str(cub / "train_test_split.txt"))):
        captions.cub_corpus(cub, split="train")


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt", "train_test_split.txt"])
def test_cub_missing_index_file_names_its_path(cub, name):
    os.remove(cub / name)
    with pytest.raises(captions.CaptionFileNotFoundError,
                       match=re.escape(f"{cub / name}: CUB index file not found")) as error:
        captions.cub_corpus(cub, split="test")
    # Binaries may catch either family.
    assert isinstance(error.value, ValueError) and isinstance(error.value, FileNotFoundError)


def test_cub_malformed_index_line_names_file_and_line(cub):
    with open(cub / "bounding_boxes.txt", "a", encoding="utf-8") as f:
        f.write("7 1.0 2.0 3.0\n")
    with pytest.raises(captions.CaptionDataError,
                       match=re.escape(f"{cub / 'bounding_boxes.txt'}:7: expected '<image_id> <x> <y> <width> "
                                       "<height>'. Received: '7 1.0 2.0 3.0'")):
        captions.cub_corpus(cub)


def test_short_caption_file_fails_naming_it_or_is_skipped_with_a_count(cub, caplog):
    short = _caption_path(cub, 3)
    _write_text(str(short), "\n".join(_sentences("x", 9)) + "\n\n\n")
    with pytest.raises(captions.CaptionDataError,
                       match=re.escape(f"{short}: 9 non-empty caption lines, fewer than captions_per_image. "
                                       "Received: captions_per_image=10")):
        captions.cub_corpus(cub, split="train")
    with caplog.at_level(logging.WARNING):
        corpus = captions.cub_corpus(cub, split="train", on_error="skip")
    assert [r.index for r in corpus] == [0, 5]
    assert "cub: skipped 1 of 3 train records" in caplog.text and str(short) in caplog.text
    assert len(captions.cub_corpus(cub, split="train", captions_per_image=9)) == 3


def test_missing_image_or_caption_file_fails_naming_it_or_is_skipped(cub, caplog):
    missing_image = cub / "images" / CUB_IMAGES[6][0]
    os.remove(missing_image)
    with pytest.raises(captions.CaptionFileNotFoundError, match=re.escape(f"{missing_image}: image listed for cub")):
        captions.cub_corpus(cub, split="train")
    os.remove(_caption_path(cub, 1))
    with pytest.raises(captions.CaptionFileNotFoundError,
                       match=re.escape(f"{_caption_path(cub, 1)}: caption file not found")):
        captions.cub_corpus(cub, split="train")  # the first bad record, in corpus order
    with caplog.at_level(logging.WARNING):
        corpus = captions.cub_corpus(cub, split="train", on_error="skip")
    assert [r.filename for r in corpus] == [_key(CUB_IMAGES[3][0])]
    assert "skipped 2 of 3 train records" in caplog.text
    assert str(_caption_path(cub, 1)) in caplog.text and str(missing_image) in caplog.text
    os.remove(_caption_path(cub, 3))
    with pytest.raises(captions.CaptionDataError, match=r"cub: no records left in split 'train' after skipping 3"):
        captions.cub_corpus(cub, split="train", on_error="skip")


def test_corpus_argument_checks(cub):
    with pytest.raises(ValueError, match=r"cub: split must be one of .*Received: split='val'"):
        captions.cub_corpus(cub, split="val")
    with pytest.raises(ValueError, match="on_error='ignore'"):
        captions.cub_corpus(cub, on_error="ignore")
    with pytest.raises(ValueError, match="captions_per_image=0"):
        captions.oxford_corpus(cub, captions_per_image=0)


# ---------------------------------------------------------------------------------------
# Oxford-102 records

OXFORD_CLASSES = {"class_00001": [1, 3], "class_00002": [2], "class_00003": [4, 5]}
OXFORD_SPLITS = {
    "trainvalclasses.txt": ["class_00001", "class_00003"],
    "testclasses.txt": ["class_00002"],
    "valclasses.txt": ["class_00003"],
    "trainclasses.txt": ["class_00001"],
}


@pytest.fixture
def oxford(tmp_path):
    root = tmp_path / "flowers"
    for class_dir, numbers in OXFORD_CLASSES.items():
        for n in numbers:
            _write_image(str(root / "jpg" / f"image_{n:05d}.jpg"), np.full((10 + n, 14, 3), 40 * n, np.uint8))
            _write_text(str(root / "text_c10" / class_dir / f"image_{n:05d}.txt"),
                        "\n".join(_sentences(f"image_{n:05d}")) + "\n")
    _write_text(str(root / "text_c10" / "class_00002.h5.txt"), "not a class folder\n")  # ignored
    for name, classes in OXFORD_SPLITS.items():
        _write_text(str(root / name), "\n".join(classes) + "\n")
    return root


@pytest.mark.parametrize("split,keys,classes", [
    ("train", [1, 3, 4, 5], [0, 0, 2, 2]),
    ("test", [2], [1]),
    ("val", [4, 5], [2, 2]),
    ("train_without_val", [1, 3], [0, 0]),
    ("all", [1, 3, 2, 4, 5], [0, 0, 1, 2, 2]),
])
def test_oxford_splits_follow_reeds_class_lists(oxford, split, keys, classes):
    corpus = captions.oxford_corpus(oxford, split=split)
    assert [r.filename for r in corpus] == [f"image_{n:05d}" for n in keys]
    assert [r.class_id for r in corpus] == classes
    assert [r.image_path for r in corpus] == [str(oxford / "jpg" / f"image_{n:05d}.jpg") for n in keys]
    assert [r.captions for r in corpus] == [tuple(_sentences(f"image_{n:05d}")) for n in keys]
    assert all(r.bbox is None for r in corpus)
    assert corpus.class_names == ("class_00001", "class_00002", "class_00003")


def test_oxford_positions_and_split_files_beside_text_dir(oxford, tmp_path):
    assert [r.index for r in captions.oxford_corpus(oxford, split="train")] == [0, 1, 3, 4]
    # Reed's archive: cvpr2016_flowers/{text_c10, trainvalclasses.txt, ...}, apart from the images.
    reed = tmp_path / "cvpr2016_flowers"
    reed.mkdir()
    os.rename(oxford / "text_c10", reed / "text_c10")
    for name in OXFORD_SPLITS:
        os.rename(oxford / name, reed / name)
    corpus = captions.oxford_corpus(oxford, text_dir=str(reed / "text_c10") + os.sep, split="test")
    assert [r.filename for r in corpus] == ["image_00002"]


def test_oxford_split_without_class_lists_is_an_error_but_all_works(oxford):
    for name in OXFORD_SPLITS:
        os.remove(oxford / name)
    assert len(captions.oxford_corpus(oxford, split="all")) == 5
    with pytest.raises(captions.CaptionFileNotFoundError,
                       match=re.escape(f"{oxford / 'trainvalclasses.txt'}: Oxford-102 split file not found")):
        captions.oxford_corpus(oxford, split="train")


def test_oxford_data_errors(oxford, caplog):
    _write_text(str(oxford / "testclasses.txt"), "class_00002\nclass_00009\n")
    with pytest.raises(captions.CaptionDataError, match=r"testclasses\.txt:2: class 'class_00009' has no caption"):
        captions.oxford_corpus(oxford, split="test")
    os.remove(oxford / "jpg" / "image_00004.jpg")
    with pytest.raises(captions.CaptionFileNotFoundError, match=re.escape(str(oxford / "jpg" / "image_00004.jpg"))):
        captions.oxford_corpus(oxford, split="val")
    with caplog.at_level(logging.WARNING):
        assert [r.filename for r in captions.oxford_corpus(oxford, split="val", on_error="skip")] == ["image_00005"]
    assert "oxford: skipped 1 of 2 val records" in caplog.text
    with pytest.raises(captions.CaptionFileNotFoundError, match=re.escape(f"{oxford / 'nowhere'}: caption folder")):
        captions.oxford_corpus(oxford, text_dir=oxford / "nowhere", split="all")


# ---------------------------------------------------------------------------------------
# load_corpus


def test_load_corpus_dispatches_and_names_bad_arguments(cub, oxford):
    shapes_corpus = captions.load_corpus("shapes", num_examples=3, seed=4, split="test")
    assert (shapes_corpus.name, len(shapes_corpus)) == ("shapes", 3)
    assert shapes_corpus[2].captions == tuple(shapes.example_captions(2, seed=4, split="test"))
    assert shapes_corpus[2].filename == "test_000002"
    cub_corpus = captions.load_corpus("cub", data_dir=str(cub), split="test")
    assert [r.filename for r in cub_corpus] == [r.filename for r in captions.cub_corpus(cub, split="test")]
    os.remove(_caption_path(cub, 1))
    assert len(captions.load_corpus("cub", data_dir=str(cub), on_error="skip")) == 2
    oxford_corpus = captions.load_corpus("oxford", data_dir=str(oxford), text_dir=str(oxford / "text_c10"),
                                         split="test")
    assert [r.filename for r in oxford_corpus] == ["image_00002"]

    with pytest.raises(ValueError, match=r"dataset must be one of .*Received: dataset='coco'"):
        captions.load_corpus("coco", data_dir=str(cub))
    with pytest.raises(ValueError, match=r"--data_dir is required for dataset='oxford'"):
        captions.load_corpus("oxford")
    with pytest.raises(ValueError, match="split='all'"):
        captions.load_corpus("shapes", split="all")


# ---------------------------------------------------------------------------------------
# caption_dataset


def test_caption_dataset_yields_colours_captions_and_keys_in_corpus_order(cub):
    corpus = captions.cub_corpus(cub, split="train")
    dataset = captions.caption_dataset(corpus, image_size=8)
    assert dataset.element_spec == {
        "image": tf.TensorSpec([8, 8, 3], tf.float32), "captions": tf.TensorSpec([10], tf.string),
        "class_id": tf.TensorSpec([], tf.int32), "filename": tf.TensorSpec([], tf.string),
        "index": tf.TensorSpec([], tf.int64),
    }
    elements = _elements(dataset)
    assert [e["index"] for e in elements] == [0, 1, 2]
    assert [e["class_id"] for e in elements] == [0, 1, 2]
    for element, image_id in zip(elements, TRAIN_IDS):
        rel_path, _, _, _, _, rgb = CUB_IMAGES[image_id]
        assert element["filename"].decode() == _key(rel_path)
        assert [c.decode() for c in element["captions"]] == _sentences(_key(rel_path))
        # JPEG (id 1) only approximates a solid colour; PNGs are exact.
        atol = 0.03 if rel_path.endswith(".jpg") else 1e-5
        np.testing.assert_allclose(element["image"], np.broadcast_to(np.float32(rgb) / 127.5 - 1, (8, 8, 3)),
                                   atol=atol)
    grey = _elements(captions.caption_dataset(corpus, image_size=4, channels=1))[1]["image"]
    np.testing.assert_allclose(grey, np.full((4, 4, 1), tf.image.rgb_to_grayscale(
        np.float32([[CUB_IMAGES[3][5]]])).numpy()[0, 0, 0] / 127.5 - 1), atol=1.5 / 127.5)


def test_bbox_crop_picks_the_boxed_half(cub):
    # Left half red, right half blue; the box sits in the red half and its 1.5x square stays there.
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:] = (0, 0, 255)
    _write_image(str(cub / "images" / CUB_IMAGES[3][0]), image)
    record = dataclasses.replace(captions.cub_corpus(cub, split="train")[1], bbox=(4.0, 6.0, 8.0, 8.0))
    corpus = captions.CaptionCorpus("cub", [record], captions_per_image=10)
    cropped = _elements(captions.caption_dataset(corpus, image_size=8))[0]["image"]
    np.testing.assert_allclose(cropped, np.broadcast_to([1.0, -1.0, -1.0], (8, 8, 3)), atol=1e-5)
    # Without the crop the centre square (columns 10-29) holds both halves.
    whole = _elements(captions.caption_dataset(corpus, image_size=8, crop_to_bbox=False))[0]["image"]
    np.testing.assert_allclose(whole[:, 0], np.broadcast_to([1.0, -1.0, -1.0], (8, 3)), atol=1e-5)
    np.testing.assert_allclose(whole[:, -1], np.broadcast_to([-1.0, -1.0, 1.0], (8, 3)), atol=1e-5)
    # A box off the image leaves nothing to resize: the error names the file.
    outside = captions.CaptionCorpus("cub", [dataclasses.replace(record, bbox=(100.0, 5.0, 4.0, 4.0))], 10)
    message = f"{record.image_path}: bounding box (x, y, width, height) leaves an empty crop"
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        _elements(captions.caption_dataset(outside, image_size=8))


def test_bbox_crop_matches_stackgan_arithmetic_at_the_border(cub):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    _write_image(str(cub / "images" / CUB_IMAGES[6][0]), pixels)
    x, y, w, h = 1.5, 2.7, 9.3, 12.9
    with open(cub / "bounding_boxes.txt", "w", encoding="utf-8") as f:
        f.write("".join(f"{i} 0 0 5 5\n" for i in range(1, 6)) + f"6 {x} {y} {w} {h}\n")
    # StackGAN's preprocess_birds.py, verbatim.
    R = int(max(w, h) * 0.75)
    cx = int((2 * x + w) / 2)
    cy = int((2 * y + h) / 2)
    y1 = max(0, cy - R)
    y2 = min(30, cy + R)
    x1 = max(0, cx - R)
    x2 = min(40, cx + R)
    assert (y1, y2, x1, x2) == (0, 18, 0, 15)  # clipped at the top and left edges
    expected = images.stackgan_preprocess(pixels[y1:y2, x1:x2], 8, training=False).numpy()
    element = _elements(captions.caption_dataset(captions.cub_corpus(cub, split="train"), image_size=8))[2]
    np.testing.assert_allclose(element["image"], expected, atol=1e-6)
    np.testing.assert_array_equal(
        captions.stackgan_bbox_crop(pixels, (x, y, w, h)).numpy(), pixels[y1:y2, x1:x2])


def test_training_augmentation_is_seeded_per_element(cub):
    pixels = np.random.default_rng(1).integers(0, 256, (26, 22, 3), dtype=np.uint8)
    _write_image(str(cub / "images" / CUB_IMAGES[6][0]), pixels)
    corpus = captions.cub_corpus(cub, split="train")

    def passes(seed):
        dataset = captions.caption_dataset(corpus, image_size=8, training=True, seed=seed, crop_to_bbox=False)
        return [e["image"] for e in dataset.repeat(4).as_numpy_iterator() if e["index"] == 2]

    first = passes(5)
    np.testing.assert_array_equal(np.stack(first), np.stack(passes(5)))
    assert len({a.tobytes() for a in first}) > 1  # a new flip / crop on each pass


def test_corrupt_image_is_named_up_front_skipped_or_named_at_iteration(cub):
    corrupt = cub / "images" / CUB_IMAGES[3][0]
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    corpus = captions.cub_corpus(cub, split="train")
    with pytest.raises(folder.ImageFolderError, match=re.escape(f"{corrupt}: unreadable image")):
        captions.caption_dataset(corpus, image_size=8)
    skipped = _elements(captions.caption_dataset(corpus, image_size=8, on_error="skip"))
    assert [e["index"] for e in skipped] == [0, 2]  # positions in the corpus survive the skip
    unvalidated = captions.caption_dataset(corpus, image_size=8, validate=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(f"{corrupt}: unreadable image")):
        _elements(unvalidated)


def test_shapes_corpus_renders_like_render_example(cub):
    corpus = captions.shapes_corpus(num_examples=3, seed=2, split="test")
    elements = _elements(captions.caption_dataset(corpus, image_size=32, training=True))
    assert [e["index"] for e in elements] == [0, 1, 2]
    for i, element in enumerate(elements):
        example = shapes.render_example(i, seed=2, image_size=32, split="test")
        # No augmentation even when training: exact pixels.
        np.testing.assert_allclose(element["image"], example["image"].astype(np.float32) / 127.5 - 1, atol=1e-6)
        assert [c.decode() for c in element["captions"]] == example["captions"]
        assert element["filename"] == f"test_{i:06d}".encode()
        assert element["class_id"] == -1
    with pytest.raises(ValueError, match="image_size=16"):
        captions.caption_dataset(corpus, image_size=16)
