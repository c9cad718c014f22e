"""A corpus of bad weight files, generated here: each must fail clearly or load.

Clean files are written once, with the real libraries (PyTorch, safetensors,
Keras 3, Keras 2 and TensorFlow), for one small model. From them:

* **damage**: truncations at several offsets, bit flips in headers and
  payloads, zeroed blocks and a wrong magic number;
* **wrong content**: a directory, a missing path, ``/dev/null``, a pipe, an
  empty file, a file of another format, wrong shapes and dtypes, missing and
  extra entries;
* **hostile files**: pickled code, zip archives inside zip archives, HDF5
  files that would read other files, malformed headers and object graphs.

Every case asserts the exact exception type and that the message names the
function and the path, and that the target is left as it was. Damage that a
format's checksums or checks must catch (TensorFlow's CRC-32C, zip's CRC-32, a
truncated file, a wrong magic number) must fail; elsewhere (``.pt``,
``.safetensors`` and HDF5 payloads have no checksum) a damaged file may also
load, but must never raise anything else. The positions are drawn from a seed
derived from each case's name (``zlib.crc32``), so a failure replays. The
default run draws a few positions per case; ``-m slow`` draws many.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import re
import shutil
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jdeconv import io

# The model: a 3x3 convolution, 3 to 2 channels ("up"), then a dense layer to
# 4 ("head"), with the weights in Keras's (and Flax's) layout.
RNG = np.random.default_rng(zlib.crc32(b"jdeconv.io corpus weights"))
WEIGHTS = {
    "up": {"kernel": RNG.standard_normal((3, 3, 3, 2)), "bias": RNG.standard_normal(2)},
    "head": {"kernel": RNG.standard_normal((2, 4)), "bias": RNG.standard_normal(4)},
}
WEIGHTS = {layer: {k: v.astype(np.float32) for k, v in d.items()} for layer, d in WEIGHTS.items()}


def target():
    """The Flax variables that receive the model: zeros of the right shapes."""
    return {
        "params": {
            layer: {name: np.zeros_like(value) for name, value in variables.items()}
            for layer, variables in WEIGHTS.items()
        }
    }


def torch_state(weights):
    """``weights`` as a PyTorch state dict of NumPy arrays (PyTorch's layouts)."""
    state = {}
    for layer, variables in weights.items():
        for name, value in variables.items():
            if name == "kernel":
                name, value = "weight", np.moveaxis(value, (-2, -1), (1, 0)).copy()
            state[f"{layer}.{name}"] = value
    return state


# --------------------------------------------------------------------------
# Formats: how to write a clean file, how to load one, where its parts are


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    function: str  # The jdeconv.io loader.
    suffix: str
    checksummed: bool  # Whether damage anywhere in the damaged file must be caught.

    def load(self, path: Path, **kwargs: Any) -> Any:
        return getattr(io, self.function)(path, target(), **kwargs)


FORMATS = {
    f.name: f
    for f in [
        Format("pt", "load_torch_state_dict", ".pt", False),
        Format("safetensors", "load_torch_state_dict", ".safetensors", False),
        Format("keras3-h5", "load_keras_weights", ".weights.h5", False),
        Format("keras", "load_keras_weights", ".keras", False),
        Format("keras2-h5", "load_keras_weights", ".h5", False),
        Format("tf-index", "load_tf_checkpoint", "", True),
        Format("tf-data", "load_tf_checkpoint", "", True),
    ]
}


def keras_quietly(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():  # Keras's own NumPy 2 deprecation warnings.
        warnings.simplefilter("ignore", DeprecationWarning)
        return call()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The clean files: format name to (path, bytes of the damaged file)."""
    directory = tmp_path_factory.mktemp("clean")
    files: dict[str, Path] = {}
    torch = pytest.importorskip("torch")
    state = torch_state(WEIGHTS)
    files["pt"] = directory / "model.pt"
    torch.save({name: torch.from_numpy(value) for name, value in state.items()}, files["pt"])
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    files["safetensors"] = directory / "model.safetensors"
    safetensors_numpy.save_file(state, str(files["safetensors"]))

    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("needs Keras 3")
    model = keras_model(keras)
    files["keras3-h5"] = directory / "model.weights.h5"
    keras_quietly(lambda: model.save_weights(files["keras3-h5"]))
    files["keras"] = directory / "model.keras"
    keras_quietly(lambda: model.save(files["keras"]))

    tf = pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    model2 = keras_model(tf_keras)
    files["keras2-h5"] = directory / "model2.h5"
    model2.save_weights(files["keras2-h5"])
    prefix = tf.train.Checkpoint(model=model2).write(str(directory / "tf" / "ckpt"))
    files["tf-index"] = files["tf-data"] = Path(prefix)
    return files


def keras_model(keras):
    model = keras.Sequential(
        [
            keras.Input((5, 5, 3)),
            keras.layers.Conv2D(2, 3, name="up"),
            keras.layers.Dense(4, name="head"),
        ]
    )
    model.set_weights([WEIGHTS[layer][name] for layer in WEIGHTS for name in ("kernel", "bias")])
    return model


def damaged_file(fmt: Format, clean_path: Path) -> Path:
    """The file of a clean checkpoint that the damage goes into."""
    if fmt.name == "tf-index":
        return Path(f"{clean_path}.index")
    if fmt.name == "tf-data":
        return Path(f"{clean_path}.data-00000-of-00001")
    return clean_path


def copy_source(fmt: Format, clean_path: Path, directory: Path) -> tuple[Path, Path]:
    """A copy of the clean source in ``directory``: (path to load, file to damage)."""
    if fmt.name.startswith("tf-"):
        prefix = directory / "ckpt"
        for suffix in (".index", ".data-00000-of-00001"):
            shutil.copyfile(f"{clean_path}{suffix}", f"{prefix}{suffix}")
        return prefix, damaged_file(fmt, prefix)
    path = directory / clean_path.name
    shutil.copyfile(clean_path, path)
    return path, path


def payload(fmt: Format, data: bytes) -> tuple[int, int]:
    """Where the "up" kernel's bytes are in the damaged file: (offset, length)."""
    kernel = WEIGHTS["up"]["kernel"]
    raw = torch_state(WEIGHTS)["up.weight"] if fmt.name in ("pt", "safetensors") else kernel
    if fmt.name == "tf-index":  # The index holds no weights: its first table block.
        return 0, 64
    offset = data.find(raw.tobytes())
    assert offset >= 0, fmt.name
    return offset, raw.nbytes


def magic(fmt: Format, data: bytes, path: Path) -> tuple[int, int]:
    """Where the format's magic number is: (offset, length)."""
    if fmt.name == "keras":  # The local header of the member that holds the weights.
        with zipfile.ZipFile(path) as archive:
            return archive.getinfo("model.weights.h5").header_offset, 4
    if fmt.name == "tf-index":  # A table ends with its magic number.
        return len(data) - 8, 8
    return 0, {"pt": 4, "safetensors": 8}.get(fmt.name, 8)  # HDF5: 8 bytes.


# --------------------------------------------------------------------------
# The checks


def check_outcome(fmt: Format, path: Path, must_fail: bool, **kwargs: Any) -> Any:
    """Loads ``path``: a ValueError naming the function and path, or a clean load.

    Also checks that the target is left untouched either way.
    """
    variables = target()
    before = copy.deepcopy(variables)
    try:
        result = getattr(io, fmt.function)(path, variables, **kwargs)
    except ValueError as error:
        assert type(error) is ValueError
        # The path, or for a checkpoint the path of its file at fault (its .index).
        assert str(error).startswith(f"{fmt.function}: '{path}"), str(error)
        result = None
    else:
        assert not must_fail, f"{path} loaded, but the damage must be caught"
        assert jax_tree_shapes(result) == jax_tree_shapes(before)
    assert jax_tree_equal(variables, before)
    return result


def jax_tree_shapes(tree):
    import jax

    return jax.tree_util.tree_map(lambda leaf: (leaf.shape, str(leaf.dtype)), tree)


def jax_tree_equal(a, b):
    import jax

    return all(
        np.array_equal(x, y)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def seed(case: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case.encode()))


@pytest.mark.parametrize("name", list(FORMATS))
def test_clean_files_load(clean, name):
    fmt = FORMATS[name]
    variables = fmt.load(clean[name])
    for layer, leaves in WEIGHTS.items():
        for leaf, value in leaves.items():
            np.testing.assert_array_equal(variables["params"][layer][leaf], value)


# --------------------------------------------------------------------------
# Damage


def truncate(data: bytes, rng: np.random.Generator, where: str, region) -> bytes:
    size = {
        "empty": 0,
        "1": 1,
        "8": 8,
        "quarter": len(data) // 4,
        "half": len(data) // 2,
        "three-quarters": 3 * len(data) // 4,
        "last-byte": len(data) - 1,
        "random": int(rng.integers(1, len(data))),
    }[where]
    return data[:size]


def flip(data: bytes, rng: np.random.Generator, where: str, region) -> bytes:
    offset, length = region(where)
    position = offset + int(rng.integers(length))
    out = bytearray(data)
    out[position] ^= 1 << int(rng.integers(8))
    return bytes(out)


def zero(data: bytes, rng: np.random.Generator, where: str, region) -> bytes:
    offset, length = region(where)
    length = min(length, 64)
    out = bytearray(data)
    out[offset : offset + length] = bytes(length)
    if out == bytearray(data):  # Already zeros: not damage.
        out[offset] ^= 0xFF
    return bytes(out)


def wrong_magic(data: bytes, rng: np.random.Generator, where: str, region) -> bytes:
    offset, length = region("magic")
    return data[:offset] + b"JUNKJUNK"[:length] + data[offset + length :]


DAMAGE = {"truncate": truncate, "flip": flip, "zero": zero, "wrong-magic": wrong_magic}
WHERE = {
    "truncate": ["empty", "1", "8", "quarter", "half", "three-quarters", "last-byte"],
    "flip": ["header", "payload"],
    "zero": ["header", "payload"],
    "wrong-magic": ["magic"],
}


def damage_cases(draws: int, first: int = 0) -> list[Any]:
    """The damage cases, with draws ``first`` to ``draws - 1`` of the random ones."""
    cases = []
    for name in FORMATS:
        for damage, places in WHERE.items():
            for where in places:
                if damage == "wrong-magic" and name == "tf-data":
                    continue  # A data shard has no magic number.
                repeats = draws if damage == "flip" else 1
                for draw in range(first if damage == "flip" else 0, repeats):
                    case = f"{name}/{damage}-{where}" + (f"-{draw}" if repeats > 1 else "")
                    cases.append(pytest.param(name, damage, where, id=case))
    for name in FORMATS:  # Truncations at random offsets.
        for draw in range(first, draws):
            case = f"{name}/truncate-random-{draw}"
            cases.append(pytest.param(name, "truncate", "random", id=case))
    return cases


def must_catch(fmt: Format, damage: str, where: str) -> bool:
    """Whether the format's own checks must catch this damage."""
    if damage in ("truncate", "wrong-magic") or fmt.checksummed:
        return True
    # A .keras member's CRC-32 covers the weights file inside the archive.
    return fmt.name == "keras" and where == "payload"


def run_damage(clean, tmp_path, request, name, damage, where):
    fmt = FORMATS[name]
    path, file = copy_source(fmt, clean[name], tmp_path)
    data = file.read_bytes()

    def region(where: str) -> tuple[int, int]:
        if where == "header":
            return 0, 64
        if where == "payload":
            return payload(fmt, data)
        return magic(fmt, data, file)

    rng = seed(request.node.callspec.id)
    file.write_bytes(DAMAGE[damage](data, rng, where, region))
    check_outcome(fmt, path, must_catch(fmt, damage, where))


@pytest.mark.parametrize(("name", "damage", "where"), damage_cases(draws=2))
def test_damaged_files(clean, tmp_path, request, name, damage, where):
    run_damage(clean, tmp_path, request, name, damage, where)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "damage", "where"),
    [
        case
        for case in damage_cases(draws=32, first=2)
        if "-random-" in case.id or "flip" in case.id
    ],
)
def test_damaged_files_many_draws(clean, tmp_path, request, name, damage, where):
    run_damage(clean, tmp_path, request, name, damage, where)


# --------------------------------------------------------------------------
# Wrong content: paths that are not weight files


LOADERS = ["load_torch_state_dict", "load_keras_weights", "load_tf_checkpoint"]


def not_a_file(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "missing.weights"
    if kind == "directory":
        return tmp_path
    if kind == "dev-null":
        return Path(os.devnull)
    if kind == "pipe":
        path = tmp_path / "pipe"
        os.mkfifo(path)  # Reading it would wait forever: it must not be opened.
        return path
    path = tmp_path / "empty.weights"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("function", LOADERS)
@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("missing", FileNotFoundError, None),
        ("directory", IsADirectoryError, "is a directory, not a weights file"),
        ("dev-null", ValueError, "not a regular file"),
        ("pipe", ValueError, "not a regular file"),
        ("empty", ValueError, "the file is empty"),
    ],
)
def test_paths_that_are_not_weight_files(tmp_path, function, kind, error, message):
    if kind == "pipe" and not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    path = not_a_file(kind, tmp_path)
    if function == "load_tf_checkpoint" and kind in ("missing", "directory"):
        # A checkpoint is a prefix or a directory.
        error, message = ValueError, "a directory without a 'checkpoint' file"
        if kind == "missing":
            error, message = FileNotFoundError, "no TensorFlow checkpoint at"
    with pytest.raises(error) as caught:
        getattr(io, function)(path, target())
    assert type(caught.value) is error
    assert str(caught.value).startswith(f"{function}: ")
    assert repr(str(path)) in str(caught.value)
    if message:
        assert message in str(caught.value)


def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.pt"
    path.write_bytes(b"locked")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("this user reads files without permission (root)")
    with pytest.raises(PermissionError, match=r"load_torch_state_dict: no permission to read"):
        io.load_torch_state_dict(path, target())


OTHER_FORMATS = {  # (clean format, loader that expects another format, what it says)
    "safetensors-to-keras": ("safetensors", "load_keras_weights", "h5py cannot open it as HDF5"),
    "pt-to-keras": ("pt", "load_keras_weights", "a zip archive without model.weights.h5"),
    "keras3-h5-to-torch": ("keras3-h5", "load_torch_state_dict", "torch.load(weights_only=True)"),
    "keras-to-torch": ("keras", "load_torch_state_dict", "torch.load(weights_only=True)"),
    "pt-to-tf": ("pt", "load_tf_checkpoint", "not a TensorFlow checkpoint"),
    "tf-data-to-keras": ("tf-data", "load_keras_weights", "h5py cannot open it as HDF5"),
}


@pytest.mark.parametrize("case", list(OTHER_FORMATS))
def test_files_of_another_format(clean, tmp_path, case):
    name, function, message = OTHER_FORMATS[case]
    path = damaged_file(FORMATS[name], clean[name])
    copied = tmp_path / path.name
    shutil.copyfile(path, copied)
    with pytest.raises(ValueError) as caught:
        getattr(io, function)(copied, target())
    assert type(caught.value) is ValueError
    assert str(caught.value).startswith(f"{function}: {str(copied)!r}: {message}")


# --------------------------------------------------------------------------
# Wrong content: shapes, dtypes, missing and extra entries, in every format


def write_torch(path: Path, weights) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in torch_state(weights).items()}, path)
    return path


def write_safetensors(path: Path, weights) -> Path:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file(torch_state(weights), str(path))
    return path


def write_keras3(path: Path, weights) -> Path:
    """The layout of Keras 3's ``save_weights``: numbered variables per layer."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as file:
        kinds = ("conv2d", "dense", "dense_1")
        for kind, (layer, variables) in zip(kinds, weights.items(), strict=False):
            group = file.create_group(f"layers/{kind}/vars")
            group.attrs["name"] = layer
            for index, value in enumerate(variables.values()):
                group[str(index)] = value
        file.create_group("vars")
    return path


def write_keras(path: Path, weights) -> Path:
    """A ``.keras`` archive around :func:`write_keras3`'s file."""
    inner = write_keras3(path.with_suffix(".inner.h5"), weights)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", "{}")
        archive.write(inner, "model.weights.h5")
    return path


def write_keras2(path: Path, weights) -> Path:
    """The layout of Keras 2's ``save_weights``: named layers and variables."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [layer.encode() for layer in weights]
        for layer, variables in weights.items():
            group = file.create_group(layer)
            names = [f"{layer}/{name}:0" for name in variables]
            group.attrs["weight_names"] = [name.encode() for name in names]
            for name, value in zip(names, variables.values(), strict=True):
                group[name] = value
    return path


def write_tf(path: Path, weights) -> Path:
    tf = pytest.importorskip("tensorflow")
    model = tf.Module()
    for layer, variables in weights.items():
        module = tf.Module()
        for name, value in variables.items():
            setattr(module, name, tf.Variable(value))
        setattr(model, layer, module)
    return Path(tf.train.Checkpoint(model=model).write(str(path / "ckpt")))


WRITERS = {
    "pt": (write_torch, ".pt", "load_torch_state_dict"),
    "safetensors": (write_safetensors, ".safetensors", "load_torch_state_dict"),
    "keras3-h5": (write_keras3, ".weights.h5", "load_keras_weights"),
    "keras": (write_keras, ".keras", "load_keras_weights"),
    "keras2-h5": (write_keras2, ".h5", "load_keras_weights"),
    "tf": (write_tf, "", "load_tf_checkpoint"),
}


def edited(change: str):
    weights = copy.deepcopy(WEIGHTS)
    if change == "shape":
        weights["head"]["kernel"] = np.ones((2, 5), np.float32)
    elif change == "dtype":
        weights["head"]["bias"] = np.arange(4, dtype=np.int32)
    elif change == "overflow":
        weights["head"]["bias"] = np.full(4, 1e300)
    elif change == "missing":
        del weights["head"]["bias"]
    elif change == "extra-variable":
        weights["head"]["extra"] = np.ones(4, np.float32)
    elif change == "extra-layer":
        weights["tail"] = {"kernel": np.ones((4, 4), np.float32)}
    return weights


# What each format's message says (entries are named as each file names them).
CONTENT_MESSAGES = {
    "shape": r"shape mismatch: it has shape",
    "dtype": r"its dtype is int32, and the target's is float32",
    "overflow": r"its value 1e\+300 does not fit the target's dtype float32",
    "missing": r"(has no variable for the target's \['params/bias'\]|it has 1 variables, the target has 2)",
    "extra-variable": r"(its 'extra' has no counterpart in Flax|it has 3 variables, the target has 2)",
    "extra-layer": r"unmatched source layers",
}


@pytest.mark.parametrize("change", list(CONTENT_MESSAGES))
@pytest.mark.parametrize("name", list(WRITERS))
def test_wrong_content(tmp_path, name, change):
    write, suffix, function = WRITERS[name]
    path = write(tmp_path / f"model{suffix}" if suffix else tmp_path, edited(change))
    variables = target()
    with pytest.raises(ValueError) as caught:
        getattr(io, function)(path, variables)
    message = str(caught.value)
    assert type(caught.value) is ValueError
    assert message.startswith(f"{function}: {str(path)!r}"), message
    assert re.search(CONTENT_MESSAGES[change], message), message
    assert jax_tree_equal(variables, target())


# --------------------------------------------------------------------------
# Hostile files: PyTorch pickles


class Payload:
    """A pickle that, if unpickled by a full unpickler, creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class NestedPayload(Payload):
    """A pickle whose unpickling unpickles another one: the payload."""

    def __reduce__(self):
        return (pickle.loads, (pickle.dumps(Payload(Path(self.marker))),))


def torch_archive(path: Path, clean_pt: Path, data_pkl: bytes) -> None:
    """A copy of a torch.save archive with its pickle replaced."""
    with zipfile.ZipFile(clean_pt) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            content = source.read(info)
            archive.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else content)


def hostile_pt(kind: str, path: Path, marker: Path, clean_pt: Path) -> None:
    torch = pytest.importorskip("torch")
    weight = torch.ones(2)
    if kind == "reduce":
        torch.save({"weight": weight, "payload": Payload(marker)}, path)
    elif kind == "nested-pickle":
        torch.save({"weight": weight, "payload": NestedPayload(marker)}, path)
    elif kind == "legacy-format":
        torch.save(
            {"weight": weight, "payload": Payload(marker)},
            path,
            _use_new_zipfile_serialization=False,
        )
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"weight": Payload(marker)}))
    elif kind == "pickle-in-archive":
        torch_archive(path, clean_pt, pickle.dumps({"weight": Payload(marker)}, protocol=2))
    elif kind == "zip-in-archive":
        inner = path.with_suffix(".inner.zip")
        with zipfile.ZipFile(inner, "w") as archive:
            archive.writestr("data.pkl", pickle.dumps(Payload(marker)))
        torch_archive(path, clean_pt, inner.read_bytes())
    elif kind == "zip-in-zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.write(clean_pt, "model.pt")
            archive.writestr("payload.pkl", pickle.dumps(Payload(marker)))


@pytest.mark.parametrize(
    "kind",
    [
        "reduce",
        "nested-pickle",
        "legacy-format",
        "plain-pickle",
        "pickle-in-archive",
        "zip-in-archive",
        "zip-in-zip",
    ],
)
def test_torch_pickled_code_is_refused(clean, tmp_path, kind):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    hostile_pt(kind, path, marker, clean["pt"])
    for function in (io.read_torch_state_dict, lambda p: io.load_torch_state_dict(p, target())):
        with pytest.raises(ValueError) as caught:
            function(path)
        assert type(caught.value) is ValueError
        assert re.match(
            rf"(read|load)_torch_state_dict: {re.escape(repr(str(path)))}: "
            r"torch\.load\(weights_only=True\) (refused it, running no code|cannot read it): ",
            str(caught.value),
        ), str(caught.value)
    assert not marker.exists()


# --------------------------------------------------------------------------
# Hostile files: safetensors headers


def safetensors_file(path: Path, header: Any, data: bytes = bytes(64), length=None) -> None:
    raw = header if isinstance(header, bytes) else json_bytes(header)
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


SAFETENSORS = {
    "header-longer-than-file": lambda p: safetensors_file(p, {}, length=2**40),
    "header-not-json": lambda p: safetensors_file(p, b"\xff\xfe{not json"),
    "offsets-beyond-file": lambda p: safetensors_file(
        p, {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10**9]}}
    ),
    "overlapping-offsets": lambda p: safetensors_file(
        p,
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        },
    ),
    "shape-larger-than-data": lambda p: safetensors_file(
        p, {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 64]}}
    ),
    "negative-shape": lambda p: safetensors_file(
        p, {"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}
    ),
    "unknown-dtype": lambda p: safetensors_file(
        p, {"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 16]}}
    ),
}


@pytest.mark.parametrize("kind", list(SAFETENSORS))
def test_hostile_safetensors(tmp_path, kind):
    pytest.importorskip("safetensors")
    path = tmp_path / "evil.safetensors"
    SAFETENSORS[kind](path)
    check_outcome(FORMATS["safetensors"], path, must_fail=True)


# --------------------------------------------------------------------------
# Hostile files: HDF5 that would read other files, and malformed Keras files


def secret_files(tmp_path: Path) -> tuple[Path, Path]:
    """Another local file (raw bytes) and another HDF5 file, that must never be read."""
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    np.full(24, 7, np.float32).tofile(secret)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["x"] = np.full(2, 7, np.float32)
    return secret, other


def edit_keras3(path: Path, edit: Callable[[Any, Any], None]) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "a") as file:
        edit(h5py, file)


def replace(name: str, make: Callable[[Any, Any, str], None]) -> Callable[[Any, Any], None]:
    def edit(h5py, file):
        del file[name]
        make(h5py, file, name)

    return edit


def external_storage(secret: Path):
    def make(h5py, file, name):
        file.create_dataset(name, (3, 3, 3, 2), "<f4", external=[(str(secret), 0, 216)])

    return make


def virtual(other: Path):
    def make(h5py, file, name):
        layout = h5py.VirtualLayout((2,), "<f4")
        layout[:] = h5py.VirtualSource(str(other), "x", (2,))
        file.create_virtual_dataset(name, layout)

    return make


def plugin_filter(h5py, file, name):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((2,))
    dcpl.set_filter(32004, h5py.h5z.FLAG_OPTIONAL)  # LZ4: a plugin HDF5 would search for.
    dataset = h5py.h5d.create(
        file.id, name.encode(), h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple((2,)), dcpl=dcpl
    )
    h5py.Dataset(dataset)[...] = np.ones(2)


def references(h5py, file, name):
    file.create_dataset(name, data=[file.ref, file.ref], dtype=h5py.ref_dtype)


KERNEL, BIAS = "layers/conv2d/vars/0", "layers/conv2d/vars/1"


def hdf5_cases(secret: Path, other: Path) -> dict[str, tuple[Callable, str]]:
    """Edits of a clean Keras 3 file, and what the message says (``{m}``: the zip member)."""
    return {
        "external-storage": (
            replace(KERNEL, external_storage(secret)),
            rf"entry '{{m}}{KERNEL}': a dataset stored in external files",
        ),
        "external-link": (
            replace(BIAS, lambda h5py, f, n: f.__setitem__(n, h5py.ExternalLink(str(other), "x"))),
            rf"entry '{{m}}{BIAS}': an external link to",
        ),
        "soft-link-through-external-link": (
            lambda h5py, f: (
                f.__setitem__("outside", h5py.ExternalLink(str(other), "/")),
                replace(BIAS, lambda h5py, f, n: f.__setitem__(n, h5py.SoftLink("/outside/x")))(
                    h5py, f
                ),
            ),
            r"entry '{m}outside': an external link to",
        ),
        "virtual-dataset": (
            replace(BIAS, virtual(other)),
            rf"entry '{{m}}{BIAS}': a virtual dataset, whose data HDF5 reads from other files",
        ),
        "filter-plugin": (
            replace(BIAS, plugin_filter),
            rf"entry '{{m}}{BIAS}': a dataset compressed with filter 32004",
        ),
        "cycle": (
            lambda h5py, f: f["layers/conv2d"].__setitem__("loop", f["layers"]),
            r"entry '{m}layers/conv2d/loop': it links to the group '{m}layers' again",
        ),
        "dangling-soft-link": (
            replace(BIAS, lambda h5py, f, n: f.__setitem__(n, h5py.SoftLink("/nowhere"))),
            rf"entry '{{m}}{BIAS}': its group names it, but the file has no such dataset \(or a link to nowhere\)",
        ),
        "vars-is-a-dataset": (
            replace("layers/dense/vars", lambda h5py, f, n: f.__setitem__(n, np.ones(3))),
            r"entry '{m}layers/dense/vars': it is a dataset, where Keras writes a group",
        ),
        "unnumbered-variable": (
            lambda h5py, f: f.move(BIAS, "layers/conv2d/vars/bias"),
            r"entry '{m}layers/conv2d/vars/bias': Keras 3 numbers a layer's variables 0, 1, \.\.\.",
        ),
        "object-references": (
            replace(BIAS, references),
            rf"entry '{{m}}{BIAS}': cannot fill target 'params/up/bias': its dtype object is not numeric",
        ),
    }


HDF5_CASES = list(hdf5_cases(Path(), Path()))


@pytest.mark.parametrize("kind", HDF5_CASES)
@pytest.mark.parametrize("container", ["weights.h5", "keras"])
def test_hostile_hdf5(tmp_path, kind, container):
    secret, other = secret_files(tmp_path)
    edit, message = hdf5_cases(secret, other)[kind]
    path = write_keras3(tmp_path / "evil.weights.h5", WEIGHTS)
    edit_keras3(path, edit)
    if container == "keras":  # The same HDF5 file inside a .keras archive.
        archive = tmp_path / "evil.keras"
        with zipfile.ZipFile(archive, "w") as file:
            file.write(path, "model.weights.h5")
        path = archive
    message = message.format(m=r"model\.weights\.h5/" if container == "keras" else "")
    with pytest.raises(ValueError) as caught:
        io.load_keras_weights(path, target())
    assert type(caught.value) is ValueError
    assert str(caught.value).startswith(f"load_keras_weights: {str(path)!r}, entry "), str(
        caught.value
    )
    assert re.search(message, str(caught.value)), str(caught.value)


def test_keras_archive_inside_an_archive(clean, tmp_path):
    path = tmp_path / "nested.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(clean["keras"], "model.weights.h5")  # A zip where HDF5 should be.
    with pytest.raises(
        ValueError,
        match=rf"^load_keras_weights: {re.escape(repr(str(path)))}, entry 'model.weights.h5': "
        r"h5py cannot open it as HDF5: OSError: ",
    ):
        io.load_keras_weights(path, target())


KERAS2_CASES = {
    "layer-names-missing-group": (
        lambda f: f.attrs.__setitem__("layer_names", [b"up", b"head", b"ghost"]),
        r"entry 'ghost': attribute 'layer_names' names it, but the file has no such group",
    ),
    "weight-names-missing-dataset": (
        lambda f: f["up"].attrs.__setitem__("weight_names", [b"up/kernel:0", b"up/ghost:0"]),
        r"entry 'up/up/ghost:0': the layer's attribute 'weight_names' names it, but the file has "
        r"no such dataset",
    ),
    "layer-names-not-strings": (
        lambda f: f.attrs.__setitem__("layer_names", np.arange(2)),
        r"its attribute 'layer_names' is a int64, not a string",
    ),
    "layer-names-twice": (
        lambda f: f.attrs.__setitem__("layer_names", [b"up", b"up", b"head"]),
        r"its attribute 'layer_names' names \['up'\] twice",
    ),
    "layer-is-a-dataset": (
        lambda f: (f.__delitem__("head"), f.__setitem__("head", np.ones(2))),
        r"entry 'head': it is a dataset, where Keras writes a group",
    ),
}


@pytest.mark.parametrize("kind", list(KERAS2_CASES))
def test_malformed_keras2_files(tmp_path, kind):
    h5py = pytest.importorskip("h5py")
    edit, message = KERAS2_CASES[kind]
    path = write_keras2(tmp_path / "bad.h5", WEIGHTS)
    with h5py.File(path, "a") as file:
        edit(file)
    with pytest.raises(ValueError) as caught:
        io.load_keras_weights(path, target())
    assert type(caught.value) is ValueError
    assert str(caught.value).startswith(f"load_keras_weights: {str(path)!r}"), str(caught.value)
    assert re.search(message, str(caught.value)), str(caught.value)


# --------------------------------------------------------------------------
# Hostile checkpoints


def test_checkpoint_file_naming_another_directory(clean, tmp_path):
    """A directory's `checkpoint` file may not lead outside the directory."""
    elsewhere = Path(f"{clean['tf-index']}")
    directory = tmp_path / "innocent"
    directory.mkdir()
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{elsewhere}"\n')
    with pytest.raises(
        ValueError,
        match=rf"^load_tf_checkpoint: {re.escape(repr(str(directory)))}, entry 'checkpoint': it "
        rf"names the checkpoint {re.escape(repr(str(elsewhere)))}, outside the directory",
    ):
        io.load_tf_checkpoint(directory, target())
    (directory / "checkpoint").write_text('model_checkpoint_path: "../../etc/ckpt"\n')
    with pytest.raises(
        ValueError,
        match=r"entry 'checkpoint': it names the checkpoint '\.\./\.\./etc/ckpt', outside",
    ):
        io.load_tf_checkpoint(directory, target())
    (directory / "checkpoint").write_text("model_checkpoint_path: {{{")
    with pytest.raises(ValueError, match=r"entry 'checkpoint': it names no checkpoint: "):
        io.load_tf_checkpoint(directory, target())


def raw_checkpoint(tf, prefix: Path, graph: bytes | None, tensors: dict[str, Any]) -> Path:
    """A checkpoint written entry by entry (valid CRCs, arbitrary content)."""
    names = list(tensors) + (["_CHECKPOINTABLE_OBJECT_GRAPH"] if graph is not None else [])
    values = [tf.constant(v) for v in tensors.values()] + ([tf.constant(graph)] if graph else [])
    tf.raw_ops.SaveV2(
        prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=values
    )
    return prefix


def object_graph(children: list[tuple[int, str]]) -> bytes:
    """An object graph of one node, the root, with these children."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    root = graph.nodes.add()
    for child, name in children:
        root.children.add(node_id=child, local_name=name)
    return graph.SerializeToString()


def test_hostile_checkpoints(tf, tmp_path):
    key = "up/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    kernel = WEIGHTS["up"]["kernel"]
    cases = {
        "graph-not-a-graph": (
            raw_checkpoint(tf, tmp_path / "a" / "ckpt", b"\xff\x00junk", {key: kernel}),
            r"entry '_CHECKPOINTABLE_OBJECT_GRAPH': TensorFlow cannot read it: DecodeError",
        ),
        "graph-node-out-of-range": (
            raw_checkpoint(tf, tmp_path / "b" / "ckpt", object_graph([(99, "up")]), {key: kernel}),
            r"entry '_CHECKPOINTABLE_OBJECT_GRAPH': the object graph refers to node 99, of 1\.",
        ),
        "string-weights": (
            raw_checkpoint(
                tf,
                tmp_path / "c" / "ckpt",
                None,
                {"up/kernel": np.full(kernel.shape, "x"), "up/bias": WEIGHTS["up"]["bias"]},
            ),
            r"entry 'up/kernel': cannot fill target 'params/up/kernel': its dtype object is not "
            r"numeric",
        ),
    }
    partial = {"params": {"up": target()["params"]["up"]}}
    for name, (prefix, message) in cases.items():
        with pytest.raises(ValueError) as caught:
            io.load_tf_checkpoint(prefix, partial)
        assert type(caught.value) is ValueError, name
        assert str(caught.value).startswith(f"load_tf_checkpoint: {str(prefix)!r}"), name
        assert re.search(message, str(caught.value)), (name, str(caught.value))


def test_checkpoint_shard_that_is_a_pipe(clean, tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    prefix, _ = copy_source(FORMATS["tf-data"], clean["tf-data"], tmp_path)
    os.remove(f"{prefix}.data-00000-of-00001")
    os.mkfifo(f"{prefix}.data-00000-of-00001")  # Reading it would wait forever.
    with pytest.raises(
        ValueError,
        match=rf"^load_tf_checkpoint: {re.escape(repr(str(prefix)))}, entry "
        r"'ckpt.data-00000-of-00001': not a regular file",
    ):
        io.load_tf_checkpoint(prefix, target())


def test_checkpoint_without_its_data(clean, tmp_path):
    prefix, _ = copy_source(FORMATS["tf-data"], clean["tf-data"], tmp_path)
    os.remove(f"{prefix}.data-00000-of-00001")
    with pytest.raises(
        ValueError,
        match=rf"^load_tf_checkpoint: {re.escape(repr(str(prefix)))}, entry "
        r"'_CHECKPOINTABLE_OBJECT_GRAPH': TensorFlow cannot read it: ",
    ):
        io.load_tf_checkpoint(prefix, target())
