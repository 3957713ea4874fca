"""``shapes``: a procedurally generated, embedded text-to-image dataset.

Nothing is downloaded or read from disk: every example is drawn on demand from
``(seed, split, index)``, so the dataset is available offline, is identical on
every machine and in every process, and any example can be fetched by index
without generating the ones before it.

Each image shows 1-3 non-overlapping objects on a plain dark background
(``BACKGROUND``). An object is one of 3 shapes (``SHAPES``) in one of 8 colours
(``COLOURS``), giving ``NUM_LABELS = 24`` classes named ``"<colour> <shape>"``
(``LABEL_NAMES``); label index ``= shape_index * 8 + colour_index``. The objects
of one image carry distinct labels, so the multi-hot label vector has exactly
as many ones as there are objects.

Every image comes with ``CAPTIONS_PER_IMAGE = 10`` distinct English captions
that name exactly its objects (colour and shape, correct articles and counts)
and no other colour or shape word. Positional phrases ("... to the left of
...") are only used when the centres are clearly apart, so they are true.

The layout (object count, labels, sizes and positions) is sampled in units of
the image side, so the same ``(seed, split, index)`` gives the same scene and
the same captions at every ``image_size``; only the raster changes.

Images are returned as ``uint8`` RGB in ``[0, 255]``; scaling to ``[-1, 1]``
and caching are left to the input pipeline that consumes ``shapes_dataset``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

# Saturated and far apart in RGB so a small generator can be judged on colour
# at a glance, and so no two classes are confusable after anti-aliasing.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (245, 225, 40),
    "purple": (160, 60, 210),
    "cyan": (40, 215, 225),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}

BACKGROUND: tuple[int, int, int] = (28, 28, 32)

NUM_LABELS = len(SHAPES) * len(COLOURS)
LABEL_NAMES: tuple[str, ...] = tuple(
    f"{colour} {shape}" for shape in SHAPES for colour in COLOURS
)
CAPTIONS_PER_IMAGE = 10
SPLITS = {"train": 0, "test": 1}

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 256

_COLOUR_NAMES = tuple(COLOURS)
_COLOUR_ARRAY = np.asarray([COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float32)
_TINT = _COLOUR_ARRAY - np.asarray(BACKGROUND, dtype=np.float32)
_BACKGROUND_HALF = np.asarray(BACKGROUND, dtype=np.float32) + np.float32(0.5)

# Layout constants, in units of the image side.
_MIN_HALF = 0.10
_MAX_HALF = 0.20
# Keeps the anti-aliased fringe (about one pixel at 32x32) clear of the border
# and of neighbouring objects.
_MARGIN = 0.03
# Positional captions need centres this far apart to be unambiguous to a reader.
_CLEAR_GAP = 0.12
_CANDIDATES = 64
_MAX_LAYOUT_ATTEMPTS = 32

# Minimal enclosing circle of each shape, relative to its half-extent h:
# (vertical offset of the circle centre from the box centre, radius).
# The triangle (apex at top, base 2h, height 2h) is acute, so its
# circumcircle is the minimal one: centre h/4 below the box centre, radius 5h/4.
_BOUND_OFFSET = (0.0, 0.0, 0.25)
_BOUND_RADIUS = (1.0, math.sqrt(2.0), 1.25)

_INV_SQRT5 = 1.0 / math.sqrt(5.0)
_PIXEL_CENTRES = np.arange(MAX_IMAGE_SIZE + 4, dtype=np.float32) + np.float32(0.5)

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}

_SINGLE_TEMPLATES = (
    "a lone {o}.",
    "a single {o} on a plain background.",
    "{a} by itself.",
    "one {o} and nothing else.",
    "an image containing only {a}.",
    "there is just one object: {a}.",
    "{a} sits alone in the frame.",
    "a picture of a single {o}.",
    "only one shape is visible, {a}.",
    "{a} on an empty background.",
    "a solitary {o}.",
    "the image shows {a} and no other objects.",
    "just {a}.",
)
# Only offered when the object is clearly off-centre; {where} is filled in then.
_SINGLE_WHERE_TEMPLATE = "{a} in the {where} of the image."

_MULTI_TEMPLATES = (
    "{l}.",
    "{n} objects: {l}.",
    "an image with {n} objects, {l}.",
    "{l} on a plain background.",
    "there are {n} shapes here: {l}.",
    "a picture showing {l}.",
    "{l}, with space between them.",
    "a scene of {n} separate objects: {l}.",
    "{n} shapes, namely {l}.",
    "the image contains only {l}.",
    "we see {l}.",
    "a simple drawing of {l}.",
    "{l}, placed apart from each other.",
    "exactly {n} objects are shown: {l}.",
)
# (template, axis, sign): "{p} <relation> {q}" is true when
# sign * (q_coord - p_coord) > _CLEAR_GAP on that axis (image y grows downward).
_PAIR_TEMPLATES = (
    ("{p} to the left of {q}{rest}.", 0, 1.0),
    ("{p} to the right of {q}{rest}.", 0, -1.0),
    ("{p} above {q}{rest}.", 1, 1.0),
    ("{p} below {q}{rest}.", 1, -1.0),
)
_ORDER_TEMPLATES = (
    ("from left to right: {l}.", 0),
    ("from top to bottom: {l}.", 1),
)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not (
        MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise ValueError(
            f"shapes: image_size must be in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]; "
            f"Received: image_size={image_size}"
        )
    return int(image_size)


def _check_split(split) -> int:
    if split not in SPLITS:
        raise ValueError(
            f"shapes: split must be one of {sorted(SPLITS)}; Received: split={split!r}"
        )
    return SPLITS[split]


def _check_non_negative(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"shapes: {name} must be a non-negative integer; Received: {name}={value}"
        )
    return int(value)


class _Uniforms:
    """Uniform floats in [0, 1) drawn from ``rng`` in blocks.

    Layout and captions need a few dozen scalars per example; one vectorised
    ``rng.random`` call per block is far cheaper than a Generator call per
    scalar, and the draw order stays fixed, so results stay deterministic.
    """

    __slots__ = ("_rng", "_buf", "_pos")

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._buf: list[float] = []
        self._pos = 0

    def __call__(self) -> float:
        if self._pos == len(self._buf):
            self._buf = self._rng.random(128).tolist()
            self._pos = 0
        self._pos += 1
        return self._buf[self._pos - 1]

    def below(self, n: int) -> int:
        return min(int(self() * n), n - 1)

    def sample(self, population: list, k: int) -> list:
        """``k`` distinct items in random order (partial Fisher-Yates)."""
        pool = list(population)
        n = len(pool)
        for i in range(k):
            j = min(i + int(self() * (n - i)), n - 1)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def _sample_layout(u: _Uniforms):
    """Returns (labels, half extents, centres); lengths in units of the image side."""
    num_objects = 1 + u.below(3)
    labels = u.sample(range(NUM_LABELS), num_objects)
    shapes = [label // len(COLOURS) for label in labels]

    for attempt in range(_MAX_LAYOUT_ATTEMPTS):
        # Three large objects sometimes cannot be packed; shrinking the upper
        # size bound on each retry guarantees termination while keeping the
        # common case (no retry) at full size variety.
        high = max(_MIN_HALF, _MAX_HALF * 0.9**attempt)
        halves = [_MIN_HALF + u() * (high - _MIN_HALF) for _ in labels]
        centres: list = [None] * num_objects
        bounds: list[tuple[float, float, float]] = []
        # Largest first: the big ones are the hard ones to fit.
        for k in sorted(range(num_objects), key=lambda i: -halves[i]):
            h = halves[k]
            lo = h + _MARGIN
            span = 1.0 - 2.0 * lo
            r = _BOUND_RADIUS[shapes[k]] * h
            for _ in range(_CANDIDATES):
                cx, cy = lo + u() * span, lo + u() * span
                by = cy + _BOUND_OFFSET[shapes[k]] * h
                if all(
                    (cx - px) ** 2 + (by - py) ** 2 > (r + pr + _MARGIN) ** 2
                    for px, py, pr in bounds
                ):
                    break
            else:
                break
            centres[k] = (cx, cy)
            bounds.append((cx, by, r))
        else:
            return labels, halves, centres
    # Unreachable in practice: at the minimum size three objects always fit.
    raise RuntimeError("shapes: could not place objects without overlap")


@functools.lru_cache(maxsize=None)
def _background(image_size: int) -> np.ndarray:
    # Broadcasting a 3-vector over a fresh image is ~30x slower than a memcpy
    # of a ready-made one, and this runs once per example.
    image = np.empty((image_size, image_size, 3), dtype=np.uint8)
    image[...] = BACKGROUND
    image.setflags(write=False)
    return image


def _render(image_size: int, labels, halves, centres) -> np.ndarray:
    s = image_size
    image = _background(s).copy()
    boxes: list[tuple[int, int, int, int]] = []
    for label, h_rel, (cx_rel, cy_rel) in zip(labels, halves, centres):
        shape = label // len(COLOURS)
        h, cx, cy = h_rel * s, cx_rel * s, cy_rel * s
        # Only the object's bounding box (plus the anti-aliasing fringe) is
        # touched, so cost scales with object area rather than image area.
        x0, x1 = max(int(cx - h) - 1, 0), min(int(cx + h) + 2, s)
        y0, y1 = max(int(cy - h) - 1, 0), min(int(cy + h) + 2, s)
        # Pixel (i, j) covers [j, j+1) x [i, i+1); sample it at its centre.
        # Work stays on 1-D row/column vectors as long as possible: the 2-D
        # broadcasts are what cost time.
        x = _PIXEL_CENTRES[: x1 - x0] + np.float32(x0 - cx)
        y = _PIXEL_CENTRES[: y1 - y0] + np.float32(y0 - cy)
        # coverage = 0.5 - signed distance (in pixels), clipped to [0, 1].
        if shape == 0:
            coverage = np.sqrt((y * y)[:, None] + (x * x)[None, :])
            np.subtract(np.float32(h + 0.5), coverage, out=coverage)
        elif shape == 1:
            coverage = np.maximum(np.abs(y)[:, None], np.abs(x)[None, :])
            np.subtract(np.float32(h + 0.5), coverage, out=coverage)
        else:
            # Intersection of three half-planes: base y <= h and the two
            # slanted edges from the apex (0, -h) to (+-h, h).
            slant_y = (-y - np.float32(h)) * np.float32(_INV_SQRT5)
            slant_x = np.abs(x) * np.float32(2.0 * _INV_SQRT5)
            coverage = slant_y[:, None] + slant_x[None, :]
            np.maximum(coverage, (y - np.float32(h))[:, None], out=coverage)
            np.subtract(np.float32(0.5), coverage, out=coverage)
        np.maximum(coverage, np.float32(0.0), out=coverage)
        np.minimum(coverage, np.float32(1.0), out=coverage)
        colour = label % len(COLOURS)
        patch = image[y0:y1, x0:x1]
        if any(x0 < bx1 and bx0 < x1 and y0 < by1 and by0 < y1 for bx0, bx1, by0, by1 in boxes):
            # Neighbouring boxes may overlap even though the shapes do not, so
            # blend over what is there. Zero coverage reproduces the existing
            # byte exactly (v + 0.5 floors back to v): earlier objects survive.
            under = patch.astype(np.float32)
            under += coverage[..., None] * (_COLOUR_ARRAY[colour] - under)
            under += np.float32(0.5)
            patch[...] = under
        else:
            # Common case: the box is pure background, so blend over the
            # constant (+ 0.5 rounds in the uint8 cast).
            patch[...] = coverage[..., None] * _TINT[colour] + _BACKGROUND_HALF
        boxes.append((x0, x1, y0, y1))
    return image


def _join(phrases: list[str], oxford: bool) -> str:
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    return ", ".join(phrases[:-1]) + ("," if oxford else "") + " and " + phrases[-1]


def _captions(u: _Uniforms, labels, centres) -> list[str]:
    """10 distinct captions naming exactly ``labels``; positions must be true."""
    phrases = [_article(LABEL_NAMES[label]) for label in labels]
    n = len(phrases)

    if n == 1:
        bare = LABEL_NAMES[labels[0]]
        candidates = [t.format(o=bare, a=phrases[0]) for t in _SINGLE_TEMPLATES]
        cx, cy = centres[0]
        horizontal = "left" if cx < 0.5 - _CLEAR_GAP else "right" if cx > 0.5 + _CLEAR_GAP else ""
        vertical = "top" if cy < 0.5 - _CLEAR_GAP else "bottom" if cy > 0.5 + _CLEAR_GAP else ""
        if horizontal and vertical:
            where = f"{vertical} {horizontal} quarter"
        else:
            where = f"{horizontal or vertical} half" if horizontal or vertical else ""
        if where:
            candidates.append(_SINGLE_WHERE_TEMPLATE.format(where=where, a=phrases[0]))
        return u.sample(candidates, CAPTIONS_PER_IMAGE)

    # Templates are chosen first and only the chosen ones are filled in: the
    # object orderings and pair choices cost random draws and string work.
    candidates: list = [("any", t) for t in _MULTI_TEMPLATES]
    for template, axis, sign in _PAIR_TEMPLATES:
        pairs = [
            (p, q)
            for p in range(n)
            for q in range(n)
            if p != q and sign * (centres[q][axis] - centres[p][axis]) > _CLEAR_GAP
        ]
        if pairs:
            candidates.append(("pair", (template, pairs)))
    for template, axis in _ORDER_TEMPLATES:
        order = sorted(range(n), key=lambda i: centres[i][axis])
        if all(centres[b][axis] - centres[a][axis] > _CLEAR_GAP for a, b in zip(order, order[1:])):
            candidates.append(("order", (template, order)))

    number = _NUMBER_WORDS[n]
    captions = []
    for kind, spec in u.sample(candidates, CAPTIONS_PER_IMAGE):
        if kind == "any":
            listing = _join(u.sample(phrases, n), oxford=u() < 0.5)
            captions.append(spec.format(n=number, l=listing))
        elif kind == "order":
            template, order = spec
            captions.append(template.format(l=_join([phrases[i] for i in order], oxford=u() < 0.5)))
        else:
            template, pairs = spec
            p, q = pairs[u.below(len(pairs))]
            rest = ""
            if n == 3:
                (other,) = {0, 1, 2} - {p, q}
                rest = (", plus " if u() < 0.5 else ", and also ") + phrases[other]
            captions.append(template.format(p=phrases[p], q=phrases[q], rest=rest))
    return captions


def example_captions(index: int, seed: int = 0, split: str = "train") -> list[str]:
    """The 10 captions of example ``index``, equal to ``render_example(...)["captions"]`` without drawing pixels."""
    split_offset = _check_split(split)
    index = _check_non_negative("index", index)
    seed = _check_non_negative("seed", seed)
    u = _Uniforms(np.random.default_rng([seed, split_offset, index]))
    labels, _, centres = _sample_layout(u)
    return _captions(u, labels, centres)


def render_example(index: int, seed: int = 0, image_size: int = 64, split: str = "train") -> dict:
    """Draws example ``index`` of the ``shapes`` dataset.

    Args:
        index: non-negative example index; examples are independent, so any
            index can be drawn directly.
        seed: non-negative dataset seed.
        image_size: side of the square image in pixels, in ``[32, 256]``.
        split: ``"train"`` or ``"test"``; folded into the seed so the splits
            hold different examples.

    Returns:
        A dict with ``"image"`` (``uint8 [S, S, 3]``), ``"label"`` (multi-hot
        ``float32 [24]``), ``"captions"`` (list of 10 distinct strings) and
        ``"objects"`` (list of dicts with ``shape``, ``colour``, ``label``,
        ``cx``, ``cy`` and ``half_size``, the last three in pixels; ``cx, cy``
        is the centre of the object's bounding box).
    """
    image_size = _check_image_size(image_size)
    split_offset = _check_split(split)
    index = _check_non_negative("index", index)
    seed = _check_non_negative("seed", seed)

    # One generator per example, keyed by its coordinates: random access and
    # reproducibility across processes without touching global RNG state.
    u = _Uniforms(np.random.default_rng([seed, split_offset, index]))
    labels, halves, centres = _sample_layout(u)
    captions = _captions(u, labels, centres)
    image = _render(image_size, labels, halves, centres)

    label_vector = np.zeros(NUM_LABELS, dtype=np.float32)
    label_vector[labels] = 1.0
    objects = [
        {
            "shape": SHAPES[label // len(COLOURS)],
            "colour": _COLOUR_NAMES[label % len(COLOURS)],
            "label": label,
            "cx": centres[k][0] * image_size,
            "cy": centres[k][1] * image_size,
            "half_size": halves[k] * image_size,
        }
        for k, label in enumerate(labels)
    ]
    return {"image": image, "label": label_vector, "captions": captions, "objects": objects}


def shapes_dataset(
    num_examples: int = 10000, image_size: int = 64, seed: int = 0, split: str = "train"
) -> tf.data.Dataset:
    """The ``shapes`` dataset as an unbatched, unshuffled, finite ``tf.data.Dataset``.

    Elements are dicts with ``"image"`` (``uint8 [S, S, 3]``, values in
    ``[0, 255]``; the caller scales to ``[-1, 1]`` and caches), ``"label"``
    (``float32 [24]``), ``"captions"`` (``tf.string [10]``) and ``"index"``
    (``int64`` scalar). Element ``i`` equals ``render_example(i, seed,
    image_size, split)`` and the order is fixed, so iterating twice gives the
    same bytes.
    """
    image_size = _check_image_size(image_size)
    _check_split(split)
    seed = _check_non_negative("seed", seed)
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)) or num_examples <= 0:
        raise ValueError(
            f"shapes: num_examples must be a positive integer; Received: num_examples={num_examples}"
        )

    def _py_render(index):
        example = render_example(int(index), seed=seed, image_size=image_size, split=split)
        captions = np.asarray([c.encode("utf-8") for c in example["captions"]], dtype=object)
        return example["image"], example["label"], captions

    def _map(index):
        image, label, captions = tf.numpy_function(
            _py_render, [index], (tf.uint8, tf.float32, tf.string), stateful=False
        )
        # numpy_function loses static shapes; models and caching need them.
        image.set_shape((image_size, image_size, 3))
        label.set_shape((NUM_LABELS,))
        captions.set_shape((CAPTIONS_PER_IMAGE,))
        index.set_shape(())
        return {"image": image, "label": label, "captions": captions, "index": index}

    return tf.data.Dataset.range(int(num_examples)).map(
        _map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
