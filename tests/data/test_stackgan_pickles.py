"""Tests for t2i.data.stackgan_pickles on tiny splits in StackGAN's released layout (N=5, 3 captions, D=8, 16 px)."""
import os
import pickle
import struct

import numpy as np
import pytest
import tensorflow as tf

from t2i.data import stackgan_pickles as sp

N, CAPTIONS, DIM, SIDE = 5, 3, 8, 16
FILENAMES = [
    "002.Laysan_Albatross/Laysan_Albatross_0002_1027",
    "002.Laysan_Albatross/Laysan_Albatross_0044_784",
    "017.Cardinal/Cardinal_0014_17389",
    "017.Cardinal/Cardinal_0061_17343",
    "200.Common_Yellowthroat/Common_Yellowthroat_0003_190521",
]
CLASS_INFO = [2, 2, 17, 17, 200]  # 1-based, as released


def _arrays():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(N, CAPTIONS, DIM)).astype(np.float32)
    images = rng.integers(0, 256, size=(N, SIDE, SIDE, 3), dtype=np.uint8)
    return embeddings, images


def _dump(path, value, protocol):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=protocol)


def _write_split(root, protocol=2, as_lists=False, split="train", class_info=True):
    embeddings, images = _arrays()
    split_dir = os.path.join(root, split)
    _dump(os.path.join(split_dir, sp.EMBEDDINGS_FILE), list(embeddings) if as_lists else embeddings, protocol)
    _dump(os.path.join(split_dir, sp.FILENAMES_FILE), list(FILENAMES), protocol)
    if class_info:
        _dump(os.path.join(split_dir, sp.CLASS_INFO_FILE), list(CLASS_INFO), protocol)
    _dump(os.path.join(split_dir, "76images.pickle"), list(images) if as_lists else images, protocol)
    return embeddings, images


# --- reading the released layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("as_lists", [False, True], ids=["arrays", "lists_of_arrays"])
def test_split_reads_back_exactly(tmp_path, protocol, as_lists):
    embeddings, images = _write_split(tmp_path, protocol=protocol, as_lists=as_lists)

    data = sp.load_stackgan_split(tmp_path, "train", image_file="76images.pickle")

    assert data.embeddings.dtype == np.float32 and data.embeddings.shape == (N, CAPTIONS, DIM)
    np.testing.assert_array_equal(data.embeddings, embeddings)
    assert data.filenames == FILENAMES and all(type(name) is str for name in data.filenames)
    np.testing.assert_array_equal(data.class_ids, [1, 1, 16, 16, 199])
    assert data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, images)
    assert data.path == os.path.join(str(tmp_path), "train") and len(data) == N


def test_numpy_scalars_and_no_images(tmp_path):
    _write_split(tmp_path, split="test")
    # Class ids taken out of a numpy array pickle as numpy scalars (numpy's `scalar` global).
    _dump(tmp_path / "test" / sp.CLASS_INFO_FILE, list(np.array(CLASS_INFO, np.int64)), 2)

    data = sp.load_stackgan_split(tmp_path, "test")

    np.testing.assert_array_equal(data.class_ids, np.array(CLASS_INFO) - 1)
    assert data.images is None


def test_missing_class_info_gives_minus_one(tmp_path):
    # StackGAN's COCO release has no class_info.pickle.
    _write_split(tmp_path, class_info=False)
    np.testing.assert_array_equal(sp.load_stackgan_split(tmp_path).class_ids, [-1] * N)


# Python 2 pickles, spelled out opcode by opcode the way py2 pickle + numpy 1.x write them at protocol 2: module
# numpy.core.multiarray, dtype codes and array data as py2 `str` (SHORT_BINSTRING/BINSTRING, i.e. bytes that
# Python 3 must decode with latin1).


def _py2_str(raw: bytes) -> bytes:
    return b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<I", len(raw)) + raw


def _py2_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _py2_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _py2_array(array: np.ndarray) -> bytes:
    byteorder, code = array.dtype.str[0].encode(), array.dtype.str[1:].encode()
    dtype = (b"cnumpy\ndtype\n" + _py2_tuple(_py2_str(code), _py2_int(0), _py2_int(1)) + b"R"
             + _py2_tuple(_py2_int(3), _py2_str(byteorder), b"N", b"N", b"N", _py2_int(-1), _py2_int(-1), _py2_int(0))
             + b"b")
    return (b"cnumpy.core.multiarray\n_reconstruct\n"
            + _py2_tuple(b"cnumpy\nndarray\n", _py2_tuple(_py2_int(0)), _py2_str(b"b")) + b"R"
            + _py2_tuple(_py2_int(1), _py2_tuple(*map(_py2_int, array.shape)), dtype, b"\x89",
                         _py2_str(np.ascontiguousarray(array).tobytes()))
            + b"b")


def _py2_list(items) -> bytes:
    return b"](" + b"".join(items) + b"e"


def _py2_file(path, body: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x80\x02" + body + b".")


def test_python2_pickles(tmp_path):
    embeddings, images = _arrays()
    split = tmp_path / "train"
    _py2_file(split / sp.EMBEDDINGS_FILE, _py2_array(embeddings))
    _py2_file(split / sp.FILENAMES_FILE, _py2_list(_py2_str(name.encode()) for name in FILENAMES))
    _py2_file(split / sp.CLASS_INFO_FILE, _py2_list(_py2_int(c) for c in CLASS_INFO))
    _py2_file(split / "304images.pickle", _py2_list(_py2_array(image) for image in images))

    data = sp.load_stackgan_split(tmp_path, image_file="304images.pickle")

    np.testing.assert_array_equal(data.embeddings, embeddings)
    assert data.filenames == FILENAMES and all(type(name) is str for name in data.filenames)
    np.testing.assert_array_equal(data.class_ids, np.array(CLASS_INFO) - 1)
    np.testing.assert_array_equal(data.images, images)


# --- refusing code ---------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles as a call of `function(*args)`, the shape of every pickle exploit."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("protocol", [2, 4])
def test_os_system_payload_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    _write_split(tmp_path, protocol=protocol)
    path = tmp_path / "train" / sp.FILENAMES_FILE
    _dump(path, [FILENAMES[0], _Payload(os.system, f"touch {marker}")], protocol)

    with pytest.raises(sp.UnsafePickleError) as raised:
        sp.load_stackgan_split(tmp_path)

    message = str(raised.value)
    assert message.startswith(f"{path}: refusing to unpickle global '{os.system.__module__}.system'")
    assert "\n" not in message
    assert not marker.exists()
    # The payload is live: the stock unpickler runs it. Without this the test could pass on a dud.
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("protocol, module", [(2, "__builtin__"), (4, "builtins")])
def test_builtins_eval_payload_is_refused(tmp_path, protocol, module):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    _dump(path, {"a": _Payload(eval, f"__import__('os').system('touch {marker}')")}, protocol)

    with pytest.raises(sp.UnsafePickleError, match=f"refusing to unpickle global '{module}.eval'") as raised:
        sp.safe_load(path)

    assert str(path) in str(raised.value)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "exec"), ("builtins", "getattr"), ("__builtin__", "getattr"), ("builtins", "__import__"),
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("numpy", "load"), ("numpy", "frombuffer"),
    ("numpy.core.multiarray", "_reconstructx"),
])
def test_only_allowlisted_globals_resolve(tmp_path, module, name):
    path = tmp_path / "global.pickle"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nU\x02idR.")

    with pytest.raises(sp.UnsafePickleError, match=f"refusing to unpickle global '{module}.{name}'"):
        sp.safe_load(path)


def test_codecs_encode_admits_latin1_only(tmp_path):
    path = tmp_path / "zlib.pickle"
    _dump(path, _Payload(__import__("_codecs").encode, "x" * 64, "zlib_codec"), 2)
    with pytest.raises(sp.UnsafePickleError, match=rf"^{path}: .*zlib_codec"):
        sp.safe_load(path)
    # bytes at protocol 2 are _codecs.encode(str, "latin1"), and b"" is bytes(): both load.
    _dump(path, [b"\x00\xffab", b""], 2)
    assert sp.safe_load(path) == [b"\x00\xffab", b""]


def test_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "train" / sp.EMBEDDINGS_FILE
    _write_split(tmp_path)
    path.write_bytes(pickle.dumps(np.zeros(3))[:-8])
    with pytest.raises(sp.StackGANDataError, match=rf"^{path}: not a readable pickle"):
        sp.load_stackgan_split(tmp_path)


# --- layout errors ---------------------------------------------------------------------------------------------------


def test_count_mismatch_names_both_files(tmp_path):
    _write_split(tmp_path)
    filenames_path = tmp_path / "train" / sp.FILENAMES_FILE
    _dump(filenames_path, FILENAMES[:4], 2)

    with pytest.raises(sp.StackGANDataError) as raised:
        sp.load_stackgan_split(tmp_path)

    message = str(raised.value)
    assert f"{filenames_path} holds 4 entries" in message
    assert f"{tmp_path / 'train' / sp.EMBEDDINGS_FILE} holds 5" in message


def test_image_count_mismatch(tmp_path):
    _, images = _write_split(tmp_path)
    _dump(tmp_path / "train" / "76images.pickle", list(images[:3]), 2)
    with pytest.raises(sp.StackGANDataError, match="76images.pickle holds 3 entries"):
        sp.load_stackgan_split(tmp_path, image_file="76images.pickle")


@pytest.mark.parametrize("missing", [sp.EMBEDDINGS_FILE, sp.FILENAMES_FILE])
def test_missing_file_names_the_path(tmp_path, missing):
    _write_split(tmp_path)
    os.remove(tmp_path / "train" / missing)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'train' / missing}: not found"):
        sp.load_stackgan_split(tmp_path)


def test_missing_image_file_and_bad_split(tmp_path):
    _write_split(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'train' / '304images.pickle'}: image pickle"):
        sp.load_stackgan_split(tmp_path, image_file="304images.pickle")
    with pytest.raises(ValueError, match="Received: split='val'"):
        sp.load_stackgan_split(tmp_path, split="val")


def test_wrong_rank_is_refused(tmp_path):
    _write_split(tmp_path)
    _dump(tmp_path / "train" / sp.EMBEDDINGS_FILE, np.zeros((N, DIM), np.float32), 2)
    with pytest.raises(sp.StackGANDataError, match=r"rank 3.*Received: shape=\(5, 8\)"):
        sp.load_stackgan_split(tmp_path)
    _write_split(tmp_path)
    _dump(tmp_path / "train" / "76images.pickle", np.zeros((N, SIDE, SIDE), np.uint8), 2)
    with pytest.raises(sp.StackGANDataError, match=r"\[N, height, width, 3\]"):
        sp.load_stackgan_split(tmp_path, image_file="76images.pickle")


def test_one_based_class_ids_are_checked(tmp_path):
    _write_split(tmp_path)
    _dump(tmp_path / "train" / sp.CLASS_INFO_FILE, [0, 1, 2, 3, 4], 2)
    with pytest.raises(sp.StackGANDataError, match="1-based.*min class id=0"):
        sp.load_stackgan_split(tmp_path)


# --- the dataset -----------------------------------------------------------------------------------------------------


def _solid_split(tmp_path):
    """A split whose image i is one solid colour, so each output image says which input it came from."""
    _write_split(tmp_path)
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 51], [10, 20, 30], [127, 128, 129]], np.uint8)
    images = np.broadcast_to(colours[:, None, None, :], (N, SIDE, SIDE, 3)).copy()
    _dump(tmp_path / "train" / "76images.pickle", images, 4)
    return colours


def test_dataset_yields_the_split_in_order(tmp_path):
    colours = _solid_split(tmp_path)
    embeddings, _ = _arrays()
    data = sp.load_stackgan_split(tmp_path, image_file="76images.pickle")

    examples = list(sp.stackgan_dataset(data, image_size=12).as_numpy_iterator())

    assert len(examples) == N
    for i, example in enumerate(examples):
        assert example["image"].shape == (12, 12, 3) and example["image"].dtype == np.float32
        np.testing.assert_allclose(example["image"], np.broadcast_to(colours[i] / 127.5 - 1, (12, 12, 3)), atol=1e-5)
        np.testing.assert_array_equal(example["embeddings"], embeddings[i])
        assert example["class_id"] == CLASS_INFO[i] - 1 and example["class_id"].dtype == np.int32
        assert example["filename"].decode() == FILENAMES[i]
        assert example["index"] == i and example["index"].dtype == np.int64


def test_dataset_without_images(tmp_path):
    _write_split(tmp_path)
    data = sp.load_stackgan_split(tmp_path)
    spec = sp.stackgan_dataset(data).element_spec
    assert sorted(spec) == ["class_id", "embeddings", "filename", "index"]
    assert spec["embeddings"].shape == (CAPTIONS, DIM)


def test_training_crops_and_flips_from_the_resized_image(tmp_path):
    _write_split(tmp_path)
    # A ramp along the width: every crop offset and the flip give a different image.
    ramp = np.tile(np.arange(SIDE, dtype=np.uint8)[None, :, None] * 16, (SIDE, 1, 3))
    ramp[:, :, 1] = np.arange(SIDE, dtype=np.uint8)[:, None] * 16  # and a ramp along the height in green
    _dump(tmp_path / "train" / "76images.pickle", [ramp] * N, 2)
    data = sp.load_stackgan_split(tmp_path, image_file="76images.pickle")

    # image_size 16 loads at int(16 * 76 / 64) = 19 px, so crops start at 0..3 and may be mirrored.
    resized = tf.image.resize(ramp.astype(np.float32) / 127.5 - 1, [19, 19], antialias=True).numpy()
    candidates = {(top, left, flip): (resized[:, ::-1] if flip else resized)[top:top + 16, left:left + 16]
                  for top in range(4) for left in range(4) for flip in (False, True)}

    def choices(dataset):
        found = []
        for example in dataset.as_numpy_iterator():
            match = [key for key, crop in candidates.items() if np.allclose(example["image"], crop, atol=1e-5)]
            assert len(match) == 1
            found.append(match[0])
        return found

    first = choices(sp.stackgan_dataset(data, image_size=16, training=True, seed=3))
    again = choices(sp.stackgan_dataset(data, image_size=16, training=True, seed=3))
    assert first == again  # a seed gives the same augmentation
    assert len(set(first)) > 1  # and elements do not all share one crop
