"""Tests for the embedded procedural ``shapes`` dataset."""
import collections
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2i.data import shapes

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPE_WORDS = set(shapes.SHAPES)
COLOUR_WORDS = set(shapes.COLOURS)
# Colour words the captions must never use: none of them is an object colour,
# so any occurrence would describe something that is not in the image.
FOREIGN_COLOUR_WORDS = {
    "gray", "grey", "black", "pink", "brown", "violet", "magenta", "gold",
    "silver", "dark", "light", "navy", "teal", "lime", "beige",
}
# Shape-like words that would name objects outside the three classes.
FOREIGN_SHAPE_WORDS = {
    "circles", "squares", "triangles", "rectangle", "ellipse", "oval", "star",
    "ball", "box", "diamond", "hexagon", "dot", "disc", "disk",
}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3}


def _parse_pairs(caption):
    """(colour, shape) pairs named in ``caption``; asserts every colour word is
    directly followed by a shape word and every shape word has a colour."""
    words = re.findall(r"[a-z]+", caption)
    pairs = []
    i = 0
    while i < len(words):
        word = words[i]
        assert word not in FOREIGN_COLOUR_WORDS, caption
        assert word not in FOREIGN_SHAPE_WORDS, caption
        if word in COLOUR_WORDS:
            assert i + 1 < len(words) and words[i + 1] in SHAPE_WORDS, caption
            pairs.append((word, words[i + 1]))
            i += 2
            continue
        assert word not in SHAPE_WORDS, f"shape without colour: {caption!r}"
        i += 1
    return pairs


def _object_pairs(example):
    return sorted((o["colour"], o["shape"]) for o in example["objects"])


def _examples(n, **kwargs):
    return [shapes.render_example(i, **kwargs) for i in range(n)]


def _digest(example):
    h = hashlib.sha256(example["image"].tobytes())
    h.update("\n".join(example["captions"]).encode())
    return h.hexdigest()


def test_constants():
    assert shapes.SHAPES == ("circle", "square", "triangle")
    assert list(shapes.COLOURS) == [
        "red", "green", "blue", "yellow", "purple", "cyan", "orange", "white"]
    assert shapes.NUM_LABELS == 24 == len(shapes.LABEL_NAMES)
    assert shapes.CAPTIONS_PER_IMAGE == 10
    assert shapes.SPLITS == {"train": 0, "test": 1}
    for s, shape in enumerate(shapes.SHAPES):
        for c, colour in enumerate(shapes.COLOURS):
            assert shapes.LABEL_NAMES[s * 8 + c] == f"{colour} {shape}"
    colours = np.array(list(shapes.COLOURS.values()) + [shapes.BACKGROUND], dtype=np.int64)
    assert colours.min() >= 0 and colours.max() <= 255
    # Clearly distinct: every pair (background included) far apart in RGB.
    dists = np.abs(colours[:, None, :] - colours[None, :, :]).sum(-1)
    assert dists[~np.eye(len(colours), dtype=bool)].min() >= 100


def test_same_seed_is_byte_identical():
    for index in (0, 5, 123, 98765):
        a = shapes.render_example(index, seed=3, image_size=64)
        b = shapes.render_example(index, seed=3, image_size=64)
        assert a["image"].tobytes() == b["image"].tobytes()
        assert a["captions"] == b["captions"]
        assert a["objects"] == b["objects"]
        np.testing.assert_array_equal(a["label"], b["label"])
    # Random access: an example does not depend on which were drawn before it.
    later_first = shapes.render_example(7, seed=3)
    _examples(7, seed=3)
    assert _digest(later_first) == _digest(shapes.render_example(7, seed=3))


def test_same_seed_is_identical_across_processes():
    # render_example is pure numpy; the child loads the module file with a
    # stand-in for tensorflow so the check costs no TensorFlow start-up.
    code = (
        "import hashlib, importlib.util, sys, types\n"
        "sys.modules['tensorflow'] = types.ModuleType('tensorflow')\n"
        f"spec = importlib.util.spec_from_file_location('shapes', {shapes.__file__!r})\n"
        "shapes = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(shapes)\n"
        "for i in range(6):\n"
        "    e = shapes.render_example(i, seed=11, image_size=48, split='test')\n"
        "    h = hashlib.sha256(e['image'].tobytes())\n"
        "    h.update('\\n'.join(e['captions']).encode())\n"
        "    print(h.hexdigest())\n"
    )
    # A different hash seed: nothing may depend on set or dict ordering of str.
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    expected = [_digest(shapes.render_example(i, seed=11, image_size=48, split="test"))
                for i in range(6)]
    assert out.stdout.split() == expected


def test_different_seed_or_split_differs():
    base = [_digest(e) for e in _examples(20, seed=0)]
    other_seed = [_digest(e) for e in _examples(20, seed=1)]
    other_split = [_digest(e) for e in _examples(20, seed=0, split="test")]
    assert len(set(base)) == 20  # examples within one split differ too
    assert not set(base) & set(other_seed)
    assert not set(base) & set(other_split)
    a = shapes.render_example(0, seed=0)["image"]
    b = shapes.render_example(0, seed=1)["image"]
    assert not np.array_equal(a, b)


def test_labels_match_objects():
    counts = collections.Counter()
    for e in _examples(300):
        label = e["label"]
        assert label.dtype == np.float32 and label.shape == (24,)
        assert set(np.unique(label)) <= {0.0, 1.0}
        n = int(label.sum())
        assert 1 <= n <= 3
        assert len(e["objects"]) == n
        object_labels = [o["label"] for o in e["objects"]]
        assert len(set(object_labels)) == n  # distinct labels
        assert sorted(np.flatnonzero(label).tolist()) == sorted(object_labels)
        for o in e["objects"]:
            assert shapes.LABEL_NAMES[o["label"]] == f"{o['colour']} {o['shape']}"
            assert o["label"] == shapes.SHAPES.index(o["shape"]) * 8 + list(
                shapes.COLOURS).index(o["colour"])
        counts[n] += 1
    # All object counts and many labels actually occur.
    assert set(counts) == {1, 2, 3}
    assert min(counts.values()) > 50


def test_captions_name_exactly_the_objects():
    templates_seen = set()
    for e in _examples(300, seed=2):
        captions = e["captions"]
        n = len(e["objects"])
        assert isinstance(captions, list) and len(captions) == 10
        assert len(set(captions)) == 10
        for caption in captions:
            assert isinstance(caption, str)
            assert caption.endswith(".") and caption == caption.strip()
            assert sorted(_parse_pairs(caption)) == _object_pairs(e), (caption, e["objects"])
            words = re.findall(r"[a-z]+", caption)
            for word in words:
                if word in NUMBER_WORDS:
                    assert NUMBER_WORDS[word] == n, caption
            # Articles agree with the following colour word.
            for article, nxt in zip(words, words[1:]):
                if article in ("a", "an") and nxt in COLOUR_WORDS:
                    assert article == ("an" if nxt[0] in "aeiou" else "a"), caption
            # Skeleton of the caption: object phrases abstracted away.
            skeleton = re.sub(r"\b(an?|lone|single|solitary|one) (\w+) (circle|square|triangle)",
                              "<obj>", caption)
            templates_seen.add(re.sub(r"(<obj>(, | and |, and ))+<obj>", "<list>", skeleton))
    assert any("an orange" in c for e in _examples(300, seed=2) for c in e["captions"])
    # Varied phrasing: many distinct sentence shapes overall.
    assert len(templates_seen) >= 12


def test_single_object_captions_have_their_own_phrasing():
    singles = [e for e in _examples(60) if len(e["objects"]) == 1]
    assert singles
    for e in singles:
        name = f"{e['objects'][0]['colour']} {e['objects'][0]['shape']}"
        for caption in e["captions"]:
            assert " and " not in caption.replace("and nothing else", "").replace(
                "and no other", ""), caption
            assert name in caption
    assert any(c.startswith("a lone ") for e in singles for c in e["captions"])


POSITION_RE = re.compile(
    r"an? (\w+) (\w+) (to the left of|to the right of|above|below) an? (\w+) (\w+)")


def test_positional_captions_are_true():
    checked = 0
    for e in _examples(300, seed=4, image_size=100):
        by_name = {(o["colour"], o["shape"]): o for o in e["objects"]}
        gap = 0.1 * 100
        for caption in e["captions"]:
            m = POSITION_RE.search(caption)
            if m:
                p = by_name[(m.group(1), m.group(2))]
                q = by_name[(m.group(4), m.group(5))]
                relation = m.group(3)
                if relation == "to the left of":
                    assert q["cx"] - p["cx"] > gap, caption
                elif relation == "to the right of":
                    assert p["cx"] - q["cx"] > gap, caption
                elif relation == "above":
                    assert q["cy"] - p["cy"] > gap, caption
                else:
                    assert p["cy"] - q["cy"] > gap, caption
                checked += 1
            for axis, key in (("from left to right", "cx"), ("from top to bottom", "cy")):
                if caption.startswith(axis):
                    coords = [by_name[pair][key] for pair in _parse_pairs(caption)]
                    assert len(coords) == len(e["objects"])
                    assert all(b - a > gap for a, b in zip(coords, coords[1:])), caption
                    checked += 1
            m = re.search(r"in the (top|bottom)? ?(left|right)? ?(half|quarter)", caption)
            if m:
                (o,) = e["objects"]
                if m.group(1):
                    assert (o["cy"] < 50 - gap) if m.group(1) == "top" else (o["cy"] > 50 + gap)
                if m.group(2):
                    assert (o["cx"] < 50 - gap) if m.group(2) == "left" else (o["cx"] > 50 + gap)
                checked += 1
    assert checked > 100


def _shape_mask(o, size, supersample=1):
    """Hard (non anti-aliased) inside mask of an object, from its geometry."""
    n = size * supersample
    c = (np.arange(n) + 0.5) / supersample
    x = c[None, :] - o["cx"]
    y = c[:, None] - o["cy"]
    h = o["half_size"]
    if o["shape"] == "circle":
        return x * x + y * y <= h * h
    if o["shape"] == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= h
    return (y <= h) & (2 * np.abs(x) - y - h <= 0)


@pytest.mark.parametrize("image_size", [64, 128])
def test_pixels_show_objects_on_background(image_size):
    background = np.array(shapes.BACKGROUND, dtype=np.uint8)
    for e in _examples(60, seed=5, image_size=image_size):
        image = e["image"]
        assert image.dtype == np.uint8 and image.shape == (image_size, image_size, 3)
        # Corners and the whole border are background: objects stay inside.
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (border == background).all()
        masks = []
        for o in e["objects"]:
            h = o["half_size"]
            assert 0.1 * image_size - 1e-6 <= h <= 0.2 * image_size + 1e-6
            assert o["cx"] - h >= 1 and o["cx"] + h <= image_size - 1
            assert o["cy"] - h >= 1 and o["cy"] + h <= image_size - 1
            centre = image[int(o["cy"]), int(o["cx"])]
            np.testing.assert_array_equal(centre, shapes.COLOURS[o["colour"]])
            mask = _shape_mask(o, image_size)
            # Most of the object's interior is exactly its colour (anti-aliased
            # edge pixels excepted), i.e. nothing is drawn over it.
            exact = (image[mask] == shapes.COLOURS[o["colour"]]).all(-1).mean()
            assert exact > 0.5, (o, exact)
            masks.append(_shape_mask(o, image_size, supersample=2))
        # Objects do not overlap (checked on a finer grid than the raster).
        assert (np.sum(masks, axis=0) <= 1).all()
        # Outside all objects (one pixel clear of them) it is plain background.
        grown = np.zeros((image_size, image_size), bool)
        for o in e["objects"]:
            grown |= _shape_mask(dict(o, half_size=o["half_size"] + 1.5), image_size)
        assert (image[~grown] == background).all()


@pytest.mark.parametrize("image_size", [32, 256])
def test_extreme_sizes_work_and_share_layout(image_size):
    e = shapes.render_example(4, seed=1, image_size=image_size)
    ref = shapes.render_example(4, seed=1, image_size=64)
    assert e["image"].shape == (image_size, image_size, 3) and e["image"].dtype == np.uint8
    # The layout is sampled in relative units: same scene, same captions.
    assert e["captions"] == ref["captions"]
    np.testing.assert_array_equal(e["label"], ref["label"])
    for o, r in zip(e["objects"], ref["objects"]):
        assert o["cx"] / image_size == pytest.approx(r["cx"] / 64)
        assert o["half_size"] / image_size == pytest.approx(r["half_size"] / 64)
        np.testing.assert_array_equal(e["image"][int(o["cy"]), int(o["cx"])],
                                      shapes.COLOURS[o["colour"]])


@pytest.mark.parametrize("bad", [31, 512, 0, -64, 64.0, True])
def test_bad_image_size_raises(bad):
    with pytest.raises(ValueError, match=re.escape(
            f"shapes: image_size must be in [32, 256]; Received: image_size={bad}")):
        shapes.render_example(0, image_size=bad)
    with pytest.raises(ValueError, match=r"image_size must be in \[32, 256\]"):
        shapes.shapes_dataset(10, image_size=bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"split.*'test'.*'train'.*Received: split='val'"):
        shapes.render_example(0, split="val")
    with pytest.raises(ValueError, match=r"split.*Received: split='validation'"):
        shapes.shapes_dataset(10, split="validation")
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"num_examples.*Received: num_examples={bad}$"):
            shapes.shapes_dataset(bad)
    with pytest.raises(ValueError, match=r"Received: index=-1"):
        shapes.render_example(-1)
    with pytest.raises(ValueError, match=r"Received: seed=-2"):
        shapes.render_example(0, seed=-2)


def test_dataset_spec_and_values():
    ds = shapes.shapes_dataset(num_examples=12, image_size=48, seed=7, split="test")
    spec = ds.element_spec
    assert set(spec) == {"image", "label", "captions", "index"}
    assert spec["image"] == tf.TensorSpec((48, 48, 3), tf.uint8)
    assert spec["label"] == tf.TensorSpec((24,), tf.float32)
    assert spec["captions"] == tf.TensorSpec((10,), tf.string)
    assert spec["index"] == tf.TensorSpec((), tf.int64)
    assert ds.cardinality().numpy() == 12

    first = list(ds.as_numpy_iterator())
    second = list(ds.as_numpy_iterator())
    assert len(first) == 12
    for i, (a, b) in enumerate(zip(first, second)):
        assert a["index"] == i
        ref = shapes.render_example(i, seed=7, image_size=48, split="test")
        assert a["image"].tobytes() == ref["image"].tobytes() == b["image"].tobytes()
        np.testing.assert_array_equal(a["label"], ref["label"])
        captions = [c.decode("utf-8") for c in a["captions"]]
        assert captions == ref["captions"] == [c.decode("utf-8") for c in b["captions"]]

    other = next(iter(shapes.shapes_dataset(3, image_size=48, seed=8, split="test")))
    assert not np.array_equal(other["image"].numpy(), first[0]["image"])


def test_dataset_batches_with_static_shapes():
    ds = shapes.shapes_dataset(num_examples=5, image_size=32).batch(4)
    assert ds.element_spec["image"].shape.as_list() == [None, 32, 32, 3]
    batches = list(ds)
    assert [int(b["image"].shape[0]) for b in batches] == [4, 1]
    assert batches[0]["captions"].shape == (4, 10)
