"""Reader of Keras weight files: Keras 3 ``.weights.h5`` and ``.keras``, Keras 2 ``.h5``.

The files are read as HDF5 with ``h5py`` (and a ``.keras`` archive as a zip,
whose member ``model.weights.h5`` is read into memory), never by deserialising
a model, so they run no code. HDF5 can make a file read others: external
links, datasets stored in external files, virtual datasets, and filters that
HDF5 would load as plugins from disk. :func:`check_contained` refuses all of
them before any dataset is read. Zip members carry a CRC-32, which
``zipfile`` checks on reading; HDF5 checks what its format checksums (the
metadata of newer files, and datasets written with the Fletcher-32 filter),
and Keras writes no checksum over the weights themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from jdeconv.io._contents import KERAS, KERAS_UNNAMED, Contents, Layer, chain
from jdeconv.io._errors import SourceError, describe, entry, require

_WEIGHTS_MEMBER = "model.weights.h5"
_CONFIG_MEMBER = "config.json"  # A .keras archive's model config.
_CONFIG_LIMIT = 64 << 20  # Larger configs are not read: they only name the layers' classes.

# HDF5's built-in filters (deflate, shuffle, fletcher32, szip, nbit,
# scaleoffset) and lzf, which h5py registers itself. Any other filter would
# make HDF5 search the disk for a plugin library and load it.
_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})

# Groups that hold state other than model weights.
_KERAS2_OPTIMIZER = "optimizer_weights"  # Beside "model_weights" in a whole-model file.
_SKIPPED_GROUPS = ("optimizer",)  # Keras 3, at the root.
_RNG_STATE = "seed_generator"  # Keras 3 random layers' generator state.


def read_file(path: str) -> Contents:
    """The layers of a Keras weights file.

    Raises:
      SourceError: if the file is not a Keras weights file, reaches outside
        itself, or cannot be read.
      MissingPackageError: without h5py.
    """
    h5py = require("h5py", "reading Keras files needs h5py: pip install h5py (or jdeconv[io]).")
    with _open(h5py, path) as (file, root_name, config):
        check_contained(h5py, file, root_name)
        with entry(root_name or None, "h5py cannot read it"):
            root = file.get("model_weights", file)
            keras2 = "layer_names" in root.attrs
            keras3 = not keras2 and ("layers" in root or "vars" in root)
            if keras2 and root is not file:  # A whole-model file: its config is an attribute.
                config = file.attrs.get("model_config")
        classes = layer_classes(config)
        if keras2:
            layers = [
                dataclasses.replace(layer, declared=classes.get(layer.name))
                for layer in _keras2_layers(h5py, root, root_name)
            ]
            skipped = []
            if root is not file and isinstance(file.get(_KERAS2_OPTIMIZER), h5py.Group):
                optimizer = file[_KERAS2_OPTIMIZER]
                skipped = _dataset_names(h5py, optimizer, _name(root_name, _KERAS2_OPTIMIZER))
            return Contents(KERAS, layers, tuple(skipped))
        if keras3:
            skipped = []
            seen: dict[Any, str] = {}
            layers = [
                dataclasses.replace(layer, declared=classes.get(layer.name, layer.declared))
                for layer in _keras3_layers(h5py, root, "", (), root_name, skipped, seen)
            ]
            return Contents(KERAS_UNNAMED, layers, tuple(skipped))
        raise SourceError(
            f"the HDF5 file has neither Keras 3's layout (groups 'layers' and 'vars') nor "
            f"Keras 2's (attribute 'layer_names'); its top-level entries are {list(root)[:8]}."
        )


def layer_classes(config: Any) -> dict[str, str]:
    """The class name of each layer in a Keras model config, by its name from the model down.

    ``config`` is the JSON text of a ``.keras`` archive's ``config.json`` or of
    a Keras 2 ``.h5`` file's ``model_config`` attribute (``None`` where there is
    none). The classes only help to match layers (see
    :mod:`jdeconv.io._kinds`), so a config that does not parse, or entries of
    another form, give none.

    Example:
      >>> layer_classes('{"config": {"layers": [{"class_name": "Sequential", "config": '
      ...               '{"name": "up", "layers": [{"class_name": "Conv2DTranspose", '
      ...               '"config": {"name": "conv2d_transpose"}}]}}]}}')
      {'up': 'Sequential', 'up/conv2d_transpose': 'Conv2DTranspose'}
    """
    if isinstance(config, bytes):
        config = config.decode("utf8", errors="replace")
    try:
        model = json.loads(config) if isinstance(config, str) else None
    except ValueError:  # json.JSONDecodeError, and recursion too deep.
        return {}
    classes: dict[str, str] = {}

    def walk(layers: Any, prefix: str, depth: int) -> None:
        if not isinstance(layers, list) or depth > 64:
            return
        for layer in layers:
            inner = layer.get("config") if isinstance(layer, dict) else None
            if not isinstance(inner, dict):
                continue
            name, class_name = inner.get("name"), layer.get("class_name")
            if isinstance(name, str) and isinstance(class_name, str):
                classes[prefix + name] = class_name
                walk(inner.get("layers"), f"{prefix}{name}/", depth + 1)

    root = model.get("config") if isinstance(model, dict) else None
    walk(root.get("layers") if isinstance(root, dict) else None, "", 0)
    return classes


@contextlib.contextmanager
def _open(h5py: Any, path: str) -> Iterator[tuple[Any, str, bytes | None]]:
    """The HDF5 file of a ``.weights.h5``, ``.h5`` or ``.keras`` file.

    Also yields the prefix of its entries' names in messages (the zip member),
    and a ``.keras`` archive's model config (``None`` for other files).
    """
    with entry(None, "cannot check whether it is a zip archive"):
        archive = zipfile.is_zipfile(path)
    if archive:
        with entry(None, "zipfile cannot read it as a .keras archive"), zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if _WEIGHTS_MEMBER not in names:
                raise SourceError(
                    f"a zip archive without {_WEIGHTS_MEMBER}, so not a .keras file; it "
                    f"holds {names[:8]}."
                )
            with entry(_WEIGHTS_MEMBER, "zipfile cannot read it"):
                data = zf.read(_WEIGHTS_MEMBER)  # Checks the member's CRC-32.
            config = None
            if _CONFIG_MEMBER in names and zf.getinfo(_CONFIG_MEMBER).file_size <= _CONFIG_LIMIT:
                with entry(_CONFIG_MEMBER, "zipfile cannot read it"):
                    config = zf.read(_CONFIG_MEMBER)
        with entry(_WEIGHTS_MEMBER, "h5py cannot open it as HDF5"):
            file = h5py.File(io.BytesIO(data), "r")
        root_name = _WEIGHTS_MEMBER
    else:
        with entry(None, "h5py cannot open it as HDF5, and it is not a .keras zip archive"):
            file = h5py.File(path, "r")
        root_name, config = "", None
    with file:
        yield file, root_name, config


def _name(root_name: str, name: str) -> str:
    name = name.lstrip("/")
    return f"{root_name}/{name}" if root_name else name


def check_contained(h5py: Any, file: Any, root_name: str = "") -> None:
    """Refuses an HDF5 file that would read anything but itself.

    Every link in the file is visited (without following soft links, and
    each object once): external links, user-defined links, virtual datasets,
    datasets with external storage and datasets with filters other than the
    built-in ones are refused, before any dataset is read. Soft links then
    resolve inside the file.

    Raises:
      SourceError: naming the first such entry.
    """
    problems: list[tuple[str, str, Exception | None]] = []

    def visit(name: str, link: Any) -> bool | None:
        # h5py mangles exceptions raised here: the first problem stops the visit.
        try:
            what = _link_problem(h5py, file, name, link)
        except Exception as error:  # Raised below, chained.
            problems.append((name, f"h5py cannot inspect it: {describe(error)}", error))
            return True
        if what:
            problems.append((name, what, None))
            return True
        return None

    with entry(root_name or None, "h5py cannot list its entries"):
        file.visititems_links(visit)
    if problems:
        name, what, error = problems[0]
        raise SourceError(what, _name(root_name, name)) from error


def _link_problem(h5py: Any, file: Any, name: str, link: Any) -> str | None:
    if isinstance(link, h5py.ExternalLink):
        return (
            f"an external link to {link.filename!r} (object {link.path!r}): a weights file "
            f"must not read other files, so jdeconv refuses it."
        )
    if isinstance(link, h5py.SoftLink):
        return None  # Resolves inside the file, since external links are refused.
    if not isinstance(link, h5py.HardLink):
        return f"a link of a kind jdeconv does not follow ({type(link).__name__})."
    obj = file[name]
    if not isinstance(obj, h5py.Dataset):
        return None
    plist = obj.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        return (
            "a virtual dataset, whose data HDF5 reads from other files: a weights file must "
            "not read other files, so jdeconv refuses it."
        )
    if plist.get_external_count():
        files = [
            plist.get_external(i)[0].decode(errors="replace")
            for i in range(plist.get_external_count())
        ]
        return (
            f"a dataset stored in external files {files}: a weights file must not read "
            f"other files, so jdeconv refuses it."
        )
    for i in range(plist.get_nfilters()):
        code, _, _, filter_name = plist.get_filter(i)
        if code not in _FILTERS:
            return (
                f"a dataset compressed with filter {code} "
                f"({filter_name.decode(errors='replace')}), which HDF5 would load as a "
                f"plugin from disk; jdeconv reads only HDF5's built-in filters and lzf."
            )
    return None


def _decode(value: Any, what: str, name: str) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        with entry(name, f"its {what} is not UTF-8"):
            return value.decode("utf8")
    if isinstance(value, str):
        return value
    raise SourceError(f"its {what} is a {type(value).__name__}, not a string.", name)


def _names_attribute(group: Any, attribute: str, name: str) -> list[str]:
    """A Keras 2 list-of-names attribute (``layer_names``, ``weight_names``)."""
    with entry(name, f"h5py cannot read its attribute {attribute!r}"):
        value = group.attrs.get(attribute, ())
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = list(value)
    if not isinstance(value, list | tuple):
        raise SourceError(
            f"its attribute {attribute!r} is a {type(value).__name__}, not a list of names.", name
        )
    return [_decode(item, f"attribute {attribute!r}", name) for item in value]


def _child(h5py: Any, group: Any, key: str, kind: str, name: str, reference: str) -> Any:
    """``group[key]``, checked to exist and to be a group or a dataset."""
    with entry(name, "h5py cannot open it"):
        child = group.get(key)
    if child is None:
        raise SourceError(
            f"{reference} names it, but the file has no such {kind} (or a link to nowhere).", name
        )
    expected = h5py.Group if kind == "group" else h5py.Dataset
    if not isinstance(child, expected):
        actual = "group" if isinstance(child, h5py.Group) else "dataset"
        raise SourceError(f"it is a {actual}, where Keras writes a {kind}.", name)
    return child


def _read(dataset: Any, name: str) -> np.ndarray:
    with entry(name, "h5py cannot read it"):
        return np.asarray(dataset[()])


def _keras2_layers(h5py: Any, root: Any, root_name: str) -> Iterator[Layer]:
    """Keras 2 (``tf_keras``) HDF5: ordered layer and weight names."""
    root_path = _name(root_name, root.name)
    position = 0
    layer_names = _names_attribute(root, "layer_names", root_path)
    twice = sorted({name for name in layer_names if layer_names.count(name) > 1})
    if twice:
        raise SourceError(f"its attribute 'layer_names' names {twice} twice.", root_path)
    for layer_name in layer_names:
        path = _name(root_name, f"{root.name}/{layer_name}")
        group = _child(h5py, root, layer_name, "group", path, "attribute 'layer_names'")
        layers: dict[str, Layer] = {}
        for weight_name in _names_attribute(group, "weight_names", path):
            full_name = f"{path}/{weight_name}"
            dataset = _child(
                h5py,
                group,
                weight_name,
                "dataset",
                full_name,
                "the layer's attribute 'weight_names'",
            )
            sub_layer, _, leaf = weight_name.split(":")[0].rpartition("/")
            name = layer_name if sub_layer in ("", layer_name) else f"{layer_name}/{sub_layer}"
            if name not in layers:
                layers[name] = Layer(name, {}, {}, "", (position,))
                position += 1
            if leaf in layers[name].variables:
                raise SourceError(f"layer {name!r} has two variables named {leaf!r}.", full_name)
            layers[name].variables[leaf] = _read(dataset, full_name)
            layers[name].full_names[leaf] = full_name
        yield from layers.values()


def _keras3_layers(
    h5py: Any,
    group: Any,
    path: str,
    names: tuple[str, ...],
    root_name: str,
    skipped: list[str],
    seen: dict[Any, str],
) -> Iterator[Layer]:
    """Keras 3 HDF5: a ``vars`` group per layer, sub-layers in sub-groups.

    ``seen`` holds the groups visited so far: Keras links each group once, so a
    group reached twice (a cycle, or two paths to one layer) is refused.
    """
    if group.id in seen:
        raise SourceError(
            f"it links to the group {seen[group.id] or '/'!r} again; Keras writes each group once.",
            _name(root_name, path),
        )
    seen[group.id] = _name(root_name, path)
    with entry(_name(root_name, path) or None, "h5py cannot list it"):
        keys = list(group)
    if "vars" in keys:
        vars_path = f"{path}/vars" if path else "vars"
        variables = _child(h5py, group, "vars", "group", _name(root_name, vars_path), "its group")
        if path:  # The root's own name is not part of the names.
            with entry(_name(root_name, vars_path), "h5py cannot read its attribute 'name'"):
                own = variables.attrs.get("name", path.rsplit("/", 1)[-1])
            names = (*names, _decode(own, "attribute 'name'", _name(root_name, vars_path)))
        with entry(_name(root_name, vars_path), "h5py cannot list it"):
            numbers = list(variables)
        for key in numbers:
            if not key.isdigit():
                raise SourceError(
                    f"Keras 3 numbers a layer's variables 0, 1, ...; this one is named {key!r}.",
                    _name(root_name, f"{vars_path}/{key}"),
                )
        if numbers:
            kind, index = chain(path)
            # Keras 3 names the groups of a model's layers after their classes
            # (layers/conv2d_transpose_3); other groups after attributes.
            parent, _, own_group = path.rpartition("/")
            declared = own_group if parent.rpartition("/")[2] == "layers" else None
            leaves = sorted(numbers, key=int)
            arrays, full_names = {}, {}
            for key in leaves:
                full_name = _name(root_name, f"{vars_path}/{key}")
                dataset = _child(h5py, variables, key, "dataset", full_name, "its group")
                arrays[key] = _read(dataset, full_name)
                full_names[key] = full_name
            yield Layer(
                "/".join(names), arrays, full_names, kind, index, (path,), declared=declared
            )
    for key in keys:
        if key == "vars":
            continue
        child_path = f"{path}/{key}" if path else key
        with entry(_name(root_name, child_path), "h5py cannot open it"):
            child = group[key]
        if not isinstance(child, h5py.Group):
            continue
        if (not path and key in _SKIPPED_GROUPS) or key.startswith(_RNG_STATE):
            skipped.extend(_dataset_names(h5py, child, _name(root_name, child_path)))
            continue
        yield from _keras3_layers(h5py, child, child_path, names, root_name, skipped, seen)


def _dataset_names(h5py: Any, group: Any, path: str) -> list[str]:
    """The datasets under ``group`` (for the report of skipped entries)."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"{path}/{name}")

    with entry(path, "h5py cannot list it"):
        group.visititems(visit)
    return found
