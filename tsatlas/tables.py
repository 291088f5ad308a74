"""Arrays <-> Arrow columns without pandas round trips of the big arrays.

A (n, ...) float array is stored as a FixedSizeList<float32> column, one row per item;
reading it back is a zero-copy view of the Arrow buffer followed by a reshape.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def fixed_list(arr: np.ndarray) -> pa.FixedSizeListArray:
    """(n, *shape) -> FixedSizeList<float32>[prod(shape)] with n rows."""
    a = np.ascontiguousarray(arr, dtype=np.float32)
    width = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), width)


def from_fixed_list(col: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> np.ndarray:
    """FixedSizeList<float32> column -> (n, *shape) float32 array."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.offset:  # a sliced array: take the visible part of the child
        arr = pa.FixedSizeListArray.from_arrays(arr.flatten(), arr.type.list_size)
    flat = arr.values.to_numpy(zero_copy_only=False)
    return flat.reshape((len(arr), *shape))


def with_meta(table: pa.Table, **meta: str | int) -> pa.Table:
    """Attach small string metadata (lengths, channel names) to a table's schema."""
    md = dict(table.schema.metadata or {})
    md.update({f"tsatlas.{k}".encode(): str(v).encode() for k, v in meta.items()})
    return table.replace_schema_metadata(md)


def meta(table: pa.Table, key: str) -> str:
    return (table.schema.metadata or {})[f"tsatlas.{key}".encode()].decode()
