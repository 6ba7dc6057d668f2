"""Read a TensorFlow checkpoint's numeric tensors with NumPy: the SavedModel's ``variables/`` without TensorFlow.

A checkpoint (TensorFlow's "tensor bundle") is two files: ``PREFIX.index``, a sorted string table (LevelDB's
format: data blocks of prefix-compressed keys, an index block, a 48-byte footer) mapping each tensor's key to a
``BundleEntryProto`` (dtype, shape, shard, offset, size), and ``PREFIX.data-SSSSS-of-NNNNN``, the tensors' raw
little-endian bytes. Serving reads the two-tower's weights this way, so loading a bundle to recommend does not
import TensorFlow (~850 MiB resident). Only what TensorFlow writes for a checkpoint is read: uncompressed
blocks, whole (unsliced) numeric tensors; anything else raises ``BundleError`` naming it.

    tensors = read_checkpoint("bundle/two_tower/saved_model/variables/variables")
    tensors["candidates/.ATTRIBUTES/VARIABLE_VALUE"]  # ndarray, float16
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from modules.errors import BundleError

TABLE_MAGIC = 0xDB4775248B80FB57  # the sorted string table's footer ends with it
FOOTER_BYTES = 48
BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + masked crc32c
# TensorFlow's DataType enum (types.proto) -> NumPy, for the types a numeric variable can have
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
STRING = 7


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, value) of a protobuf message: ints for varints and fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield field, value


def _entry(value: bytes) -> dict:
    """A ``BundleEntryProto``: dtype, shape, shard_id, offset, size (and whether it is sliced)."""
    e = {"dtype": 1, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "sliced": False}
    for field, v in _fields(value):
        if field == 1:
            e["dtype"] = v
        elif field == 2:
            for f, dim in _fields(v):
                if f == 2:
                    e["shape"].append(next((s for g, s in _fields(dim) if g == 1), 0))
        elif field == 3:
            e["shard_id"] = v
        elif field == 4:
            e["offset"] = v
        elif field == 5:
            e["size"] = v
        elif field == 7:
            e["sliced"] = True
    return e


def _block(data: bytes, offset: int, size: int, where: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block."""
    if offset + size + BLOCK_TRAILER_BYTES > len(data):
        raise BundleError(f"{where}: a block runs past the end of the file (truncated?). Re-train it.")
    if data[offset + size] != 0:
        raise BundleError(f"{where}: a block is compressed (type {data[offset + size]}); only the uncompressed "
                          "checkpoints TensorFlow writes are read. Re-train it.")
    block = data[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        n, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + n]))
        pos += n
    return out


def checkpoint_entries(prefix: str | Path) -> dict[str, dict]:
    """Every tensor key of the checkpoint at ``prefix`` -> its ``BundleEntryProto`` fields (no tensor read)."""
    index = Path(f"{prefix}.index")
    if not index.exists():
        raise BundleError(f"checkpoint {index} does not exist. Re-train the bundle.")
    data = index.read_bytes()
    where = f"checkpoint {index}"
    if len(data) < FOOTER_BYTES or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise BundleError(f"{where} is not a TensorFlow checkpoint index (no table footer). Re-train it.")
    footer = data[len(data) - FOOTER_BYTES:]
    _, pos = _varint(footer, 0)  # the meta-index block's offset and size: unused
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    out = {}
    for _, handle in _block(data, index_offset, index_size, where):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block(data, offset, size, where):
            if key:  # "" is the header (BundleHeaderProto)
                out[key.decode("utf-8")] = _entry(value)
    return out


def read_checkpoint(prefix: str | Path, keys=None, mapped=()) -> dict[str, np.ndarray]:
    """The numeric tensors of the checkpoint at ``prefix`` (the path without ``.index``), by key; ``keys``:
    only those (all numeric tensors when ``None``). String tensors (the object graph, lookup tables) are
    skipped. Each tensor is read straight from its shard into its own array, or, for the keys in ``mapped``,
    memory-mapped read-only from it (a serving tower reads a few rows of its embedding tables per query: their
    pages are read, and count as resident, only when touched).

    Raises
    ------
    BundleError
        When the files are missing, truncated or not a checkpoint, or a key asked for is absent.
    """
    entries = checkpoint_entries(prefix)
    if keys is not None:
        missing = sorted(set(keys) - set(entries))
        if missing:
            raise BundleError(f"checkpoint {prefix} lacks {', '.join(missing)}. Re-train the bundle.")
        entries = {k: entries[k] for k in keys}
    shards = sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.data-*-of-*"))
    out = {}
    for key, e in entries.items():
        if e["dtype"] == STRING and keys is None:
            continue
        if e["dtype"] not in DTYPES or e["sliced"]:
            raise BundleError(f"checkpoint {prefix}: {key} is not a whole numeric tensor (dtype {e['dtype']}).")
        dtype = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        count = int(np.prod(e["shape"], dtype=np.int64))
        shard = Path(prefix).parent / f"{Path(prefix).name}.data-{e['shard_id']:05d}-of-{len(shards):05d}"
        if count * dtype.itemsize != e["size"] or not shard.exists() \
                or shard.stat().st_size < e["offset"] + e["size"]:
            raise BundleError(f"checkpoint {prefix}: {key} does not fit its data file {shard.name} (truncated?). "
                              "Re-train the bundle.")
        if key in mapped and count and dtype.isnative:
            a = np.memmap(shard, dtype=dtype, mode="r", offset=e["offset"], shape=(count,))
        else:
            a = np.fromfile(shard, dtype=dtype, count=count, offset=e["offset"]) if count else np.zeros(0, dtype)
        out[key] = a.reshape(e["shape"]).astype(dtype.newbyteorder("="), copy=False)
    return out


OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _scalar_string(prefix: str | Path, entry: dict) -> bytes:
    """A scalar string tensor's bytes: its length (varint), a 4-byte checksum of the lengths, the bytes."""
    shard = Path(prefix).parent / f"{Path(prefix).name}.data-{entry['shard_id']:05d}-of-"
    (path,) = Path(prefix).parent.glob(shard.name + "*")
    with open(path, "rb") as f:
        f.seek(entry["offset"])
        raw = f.read(entry["size"])
    n, pos = _varint(raw, 0)
    return raw[pos + 4:pos + 4 + n]


def variable_keys(prefix: str | Path, paths) -> dict[str, str]:
    """The checkpoint keys of variables named by their object path (``"query_tower/hidden/kernel"``: the
    attribute names from the saved root down), read from the checkpoint's object graph (a
    ``TrackableObjectGraph``: nodes with named children and their saved tensors). Raises ``BundleError`` for a
    path the graph does not have."""
    entries = checkpoint_entries(prefix)
    if OBJECT_GRAPH not in entries:
        raise BundleError(f"checkpoint {prefix} has no object graph. Re-train the bundle.")
    nodes = [v for f, v in _fields(_scalar_string(prefix, entries[OBJECT_GRAPH])) if f == 1]
    children, keys = [], []
    for node in nodes:
        named, key = {}, None
        for f, v in _fields(node):
            if f == 1:  # ObjectReference: node_id, local_name
                ref = dict(_fields(v))
                named[ref.get(2, b"").decode("utf-8")] = ref.get(1, 0)
            elif f == 2:  # SerializedTensor: name, full_name, checkpoint_key
                t = dict(_fields(v))
                if t.get(1) == b"VARIABLE_VALUE":
                    key = t.get(3, b"").decode("utf-8")
        children.append(named)
        keys.append(key)
    out = {}
    for path in paths:
        node = 0
        for name in path.split("/"):
            node = children[node].get(name, -1) if node >= 0 else -1
        if node < 0 or keys[node] is None:
            raise BundleError(f"checkpoint {prefix} has no variable {path}. Re-train the bundle.")
        out[path] = keys[node]
    return out
