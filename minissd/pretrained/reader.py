"""Reading published checkpoint files without PyTorch, and without running code from them.

A PyTorch state dict saved with ``torch.save`` is a pickle, and unpickling can call any Python function
the file names (``os.system`` included). This reader unpickles with an ``Unpickler`` whose ``find_class``
knows only the handful of names a state dict needs, each mapped to a small function of ours that returns
plain data; any other name is refused with :class:`UnsafeCheckpointError` before anything is called.

Formats read by :func:`read_state_dict`:

* **PyTorch zip** (``torch.save`` since 1.6): a zip archive ``<name>/data.pkl`` (the pickled dict, tensors
  as references to storages), ``<name>/data/<key>`` (the raw bytes of each storage), ``<name>/byteorder``.
* **PyTorch legacy** (before 1.6, e.g. files published in 2017): one stream of five pickles (magic number,
  protocol, system info, the dict, the list of storage keys), then each storage's element count (int64)
  and bytes. It names the same globals, so the same restricted unpickler reads it.
* **safetensors**: 8-byte little-endian header length, a JSON header (``dtype``, ``shape``,
  ``data_offsets`` per tensor), then the raw bytes. No pickle at all.

Every tensor comes back as an independent NumPy array (copied out of the file's buffer), with its dtype,
shape and strides honoured; bfloat16 is widened to float32 (NumPy has no bfloat16).
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

__all__ = ["CheckpointFormatError", "UnsafeCheckpointError", "check_shape", "read_state_dict", "detect_format"]

#: element type of each storage class a state dict may name (PyTorch's ``torch.<Name>Storage``)
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
#: safetensors dtype codes
SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_PICKLE_BYTES = 64 * 2**20  # a state dict's pickle is kilobytes; the tensors live outside it
_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit for its JSON header


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint this reader understands, or it is truncated or corrupt."""


class UnsafeCheckpointError(CheckpointFormatError):
    """The file's pickle names a Python global outside the allow-list (it could run code if loaded)."""


# ------------------------------------------------------------------------------------ safe pickle parts
class _StorageType:
    """Stands for ``torch.<Name>Storage`` in a pickle: only its element dtype is kept; it cannot be called."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, STORAGE_DTYPES[name]

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _StorageRef:
    """A storage named in the pickle; ``array`` (flat, host) is filled from the file."""

    __slots__ = ("key", "dtype", "numel", "array")

    def __init__(self, key: str, dtype: str, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _TensorRef:
    """A tensor named in the pickle: a strided view of a storage, materialised once storages are read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointFormatError(f"corrupt checkpoint: tensor {what} must be a tuple of integers, got {value!r}")
    return value


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> _TensorRef:
    """Our stand-in for ``torch._utils._rebuild_tensor_v2``: record where the tensor's numbers are."""
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError(f"corrupt checkpoint: a tensor refers to {type(storage).__name__}, "
                                    "not to a storage")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointFormatError(f"corrupt checkpoint: tensor offset {storage_offset!r}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointFormatError(f"corrupt checkpoint: tensor size {size} and stride {stride} do not fit")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    """Our stand-in for ``torch._utils._rebuild_parameter``: a Parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise CheckpointFormatError("corrupt checkpoint: a Parameter does not wrap a tensor")
    return data


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    if args:  # a state dict pickles as OrderedDict() then SETITEMS; arguments would be unusual
        raise CheckpointFormatError("corrupt checkpoint: OrderedDict called with arguments")
    return collections.OrderedDict()


#: the only globals a state dict's pickle may name, and what each becomes
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals and hands storages to ``persistent``."""

    def __init__(self, file: IO[bytes], persistent: Callable[[Any], _StorageRef]) -> None:
        super().__init__(file)
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to load: the checkpoint's pickle names the global {module}.{name}, which a state dict "
                f"of tensors never needs (allowed: {', '.join(f'{m}.{n}' for m, n in _ALLOWED)}). Loading it "
                "with torch.load could run code; convert it only if you trust its source, with PyTorch itself"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


def _unpickle(data: bytes, persistent: Callable[[Any], _StorageRef], path: str) -> Any:
    try:
        return _SafeUnpickler(io.BytesIO(data), persistent).load()
    except CheckpointFormatError:
        raise
    except Exception as exc:  # anything a broken byte stream can raise inside pickle
        raise CheckpointFormatError(f"{path!r}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None


def _storage_id(pid: Any, where: str) -> tuple[_StorageType, str, int, Any]:
    """(storage type, key, element count, view metadata) from a persistent id ('storage', type, key, ...)."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
        raise CheckpointFormatError(f"{where}: unexpected persistent id {pid!r:.80} (expected a storage)")
    storage_type, key, _location, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
        raise CheckpointFormatError(f"{where}: storage of unknown type {storage_type!r}")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise CheckpointFormatError(f"{where}: corrupt storage id {pid!r:.80}")
    return storage_type, key, numel, pid[5] if len(pid) > 5 else None


def _itemsize(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _decode(raw: bytes | memoryview, dtype: str, big_endian: bool = False) -> np.ndarray:
    """Flat array from raw bytes; bfloat16 becomes float32 (its 16 bits are float32's upper half)."""
    if dtype == "bfloat16":
        half = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (half << 16).view(np.float32)
    dt = np.dtype(dtype)
    return np.frombuffer(raw, dtype=dt.newbyteorder(">") if big_endian and dt.itemsize > 1 else dt)


def _materialise(obj: Any, where: str) -> np.ndarray:
    """The NumPy array a _TensorRef describes: bounds checked against its storage, copied out."""
    flat = obj.storage.array
    if flat is None:
        raise CheckpointFormatError(f"{where}: storage {obj.storage.key!r} was never written in the file")
    if 0 in obj.size:
        return np.zeros(obj.size, dtype=flat.dtype.newbyteorder("="))
    last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
    if last >= flat.shape[0]:
        raise CheckpointFormatError(f"{where}: tensor of size {obj.size} runs past the end of its storage "
                                    f"({flat.shape[0]} elements)")
    view = np.lib.stride_tricks.as_strided(flat[obj.offset:], shape=obj.size,
                                           strides=tuple(s * flat.itemsize for s in obj.stride), writeable=False)
    # np.array, not ascontiguousarray: the latter turns a 0-d tensor into shape (1,)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)


def _to_arrays(obj: Any, where: str) -> Any:
    """Replace every _TensorRef in a nest of dicts/lists by its array."""
    if isinstance(obj, _TensorRef):
        return _materialise(obj, where)
    if isinstance(obj, dict):
        return {k: _to_arrays(v, where) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_arrays(v, where) for v in obj)
    return obj


# ------------------------------------------------------------------------------------ the three formats
def _read_torch_zip(path: str) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointFormatError(f"{path!r}: not a readable zip archive ({exc})") from None
    with archive:
        names = archive.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkls) != 1:
            raise CheckpointFormatError(f"{path!r}: a zip archive but not a PyTorch checkpoint (expected one "
                                        f"<name>/data.pkl, found {len(pkls)})")
        prefix = pkls[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").strip()
            if order not in (b"little", b"big"):
                raise CheckpointFormatError(f"{path!r}: unknown byte order {order!r}")
            big_endian = order == b"big"
        info = archive.getinfo(pkls[0])
        if info.file_size > _MAX_PICKLE_BYTES:
            raise CheckpointFormatError(f"{path!r}: data.pkl is {info.file_size} bytes, too large for a state dict")
        storages: dict[str, _StorageRef] = {}

        def persistent(pid: Any) -> _StorageRef:
            storage_type, key, numel, _ = _storage_id(pid, repr(path))
            if key not in storages:
                member = f"{prefix}data/{key}"
                nbytes = numel * _itemsize(storage_type.dtype)
                try:
                    member_info = archive.getinfo(member)
                except KeyError:
                    raise CheckpointFormatError(f"{path!r}: storage {member!r} is missing (truncated file?)") from None
                if member_info.file_size < nbytes:  # checked before reading: no decompression bomb
                    raise CheckpointFormatError(f"{path!r}: storage {member!r} holds {member_info.file_size} bytes, "
                                                f"{nbytes} expected (truncated or corrupt)")
                ref = _StorageRef(key, storage_type.dtype, numel)
                try:
                    raw = archive.read(member)[:nbytes]
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise CheckpointFormatError(f"{path!r}: storage {member!r} is unreadable ({exc})") from None
                ref.array = _decode(raw, storage_type.dtype, big_endian)
                storages[key] = ref
            return storages[key]

        try:
            pickled = archive.read(pkls[0])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointFormatError(f"{path!r}: data.pkl is unreadable ({exc})") from None
        return _to_arrays(_unpickle(pickled, persistent, path), repr(path))


def _read_torch_legacy(path: str, data: bytes) -> Any:
    f = io.BytesIO(data)
    storages: dict[str, _StorageRef] = {}

    def persistent(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] in ("module", b"module"):
            raise CheckpointFormatError(f"{path!r}: a pickled nn.Module, not a state dict; save model.state_dict()")
        storage_type, key, numel, view = _storage_id(pid, repr(path))
        if view is not None:
            raise CheckpointFormatError(f"{path!r}: storage views (legacy format) are not supported")
        return storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))

    def load_one() -> Any:
        try:
            unpickler = _SafeUnpickler(f, persistent)
            return unpickler.load()
        except CheckpointFormatError:
            raise
        except Exception as exc:
            raise CheckpointFormatError(f"{path!r}: corrupt or truncated legacy checkpoint "
                                        f"({type(exc).__name__}: {exc})") from None

    if load_one() != _LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path!r}: a pickle but not a PyTorch checkpoint (wrong magic number)")
    load_one()  # protocol version
    sys_info = load_one()
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    obj = load_one()
    keys = load_one()
    if not isinstance(keys, list):
        raise CheckpointFormatError(f"{path!r}: corrupt legacy checkpoint (no list of storage keys)")
    for key in keys:
        key = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        if key not in storages:
            raise CheckpointFormatError(f"{path!r}: storage {key!r} is listed but never used")
        ref = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path!r}: truncated legacy checkpoint (storage {key!r} missing)")
        (numel,) = struct.unpack(">q" if big_endian else "<q", header)
        if numel != ref.numel:
            raise CheckpointFormatError(f"{path!r}: storage {key!r} has {numel} elements, {ref.numel} expected")
        nbytes = numel * _itemsize(ref.dtype)
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointFormatError(f"{path!r}: truncated legacy checkpoint (storage {key!r} is short)")
        ref.array = _decode(raw, ref.dtype, big_endian)
    return _to_arrays(obj, repr(path))


def _read_safetensors(path: str, data: bytes) -> dict[str, np.ndarray]:
    if len(data) < 8:
        raise CheckpointFormatError(f"{path!r}: too short for a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER_BYTES or 8 + n > len(data):
        raise CheckpointFormatError(f"{path!r}: safetensors header of {n} bytes does not fit a {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"{path!r}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"{path!r}: safetensors header is not a JSON object")
    body = memoryview(data)[8 + n:]
    out: dict[str, np.ndarray] = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = SAFETENSORS_DTYPES[entry["dtype"]], entry["shape"], entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointFormatError(f"{path!r}: tensor {key!r} has a malformed entry {entry!r:.120} "
                                        f"(dtype one of {sorted(SAFETENSORS_DTYPES)})") from None
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
                and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(body)):
            raise CheckpointFormatError(f"{path!r}: tensor {key!r} lies outside the file or has a bad shape "
                                        f"(shape {shape}, bytes {begin}..{end} of {len(body)})")
        if end - begin != int(np.prod(shape, dtype=np.int64)) * _itemsize(dtype):
            raise CheckpointFormatError(f"{path!r}: tensor {key!r} of shape {shape} and dtype {entry['dtype']} "
                                        f"does not fill bytes {begin}..{end}")
        out[key] = _decode(body[begin:end], dtype).reshape(shape).copy()
    return out


# ------------------------------------------------------------------------------------ public entry
def detect_format(path: str | os.PathLike[str]) -> str:
    """"torch-zip", "torch-legacy" or "safetensors", from the file's first bytes; CheckpointFormatError otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointFormatError(
        f"{path!r}: unknown checkpoint layout (first bytes {head[:8]!r}); expected a PyTorch .pth/.pt file "
        "(zip or legacy pickle), or a .safetensors file")


def _unwrap(obj: Any, path: str) -> dict[str, np.ndarray]:
    """The flat {name: array} state dict inside what a file held."""
    if isinstance(obj, Mapping) and not all(isinstance(v, np.ndarray) for v in obj.values()):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], path)
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, np.ndarray)
                                               for k, v in obj.items()):
        kinds = sorted({type(v).__name__ for v in obj.values()}) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointFormatError(f"{path!r}: expected a state dict (names -> tensors), got {kinds}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from torch.nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a published checkpoint as ``{name: numpy array}``, without PyTorch and without running code.

    ``path``: a ``.pth`` / ``.pt`` file written by ``torch.save(model.state_dict())`` (zip or legacy
    format) or a ``.safetensors`` file. A dict wrapping the state dict under ``"state_dict"`` or ``"model"``
    is unwrapped, and a DataParallel ``module.`` prefix removed. Raises :class:`UnsafeCheckpointError` when
    the pickle names any global outside the allow-list, :class:`CheckpointFormatError` for anything else
    that is not a readable checkpoint (truncated, garbage, unknown layout).
    """
    path = os.fspath(path)
    kind = detect_format(path)
    if kind == "torch-zip":
        return _unwrap(_read_torch_zip(path), path)
    with open(path, "rb") as f:
        data = f.read()
    if kind == "torch-legacy":
        return _unwrap(_read_torch_legacy(path, data), path)
    return _read_safetensors(path, data)


def check_shape(key: str, array: np.ndarray, expected: tuple[int, ...], source: str = "checkpoint") -> np.ndarray:
    """``array`` if its shape is ``expected``; else a CheckpointFormatError naming the key and both shapes."""
    if tuple(array.shape) != tuple(expected):
        raise CheckpointFormatError(f"{source}: tensor {key!r} has shape {tuple(array.shape)}, "
                                    f"expected {tuple(expected)}")
    return array
