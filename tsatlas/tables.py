"""Arrays <-> Arrow columns without pandas round trips of the big arrays.

A (n, ...) float array is stored as a FixedSizeList<float32> column, one row per item;
reading it back is a zero-copy view of the Arrow buffer followed by a reshape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


def whole_groups(batches: Iterable[pa.RecordBatch], key: str) -> Iterator[pa.Table]:
    """Re-cut a stream of record batches of a table grouped by `key` so that every yielded table
    holds whole groups: the rows of the last group of a batch are carried over to the next one.
    A group longer than a batch is carried until it ends, so it must fit in memory by itself."""
    carry: pa.Table | None = None
    for rb in batches:
        t = pa.Table.from_batches([rb]) if carry is None else pa.concat_tables([carry, pa.Table.from_batches([rb])])
        k = t.column(key)
        last = t.num_rows - 1
        change = pc.not_equal(k.slice(1), k.slice(0, last)) if last > 0 else pa.array([], pa.bool_())
        starts = np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1
        cut_at = int(starts[-1]) if len(starts) else 0  # where the last group of this batch begins
        if cut_at:
            yield t.slice(0, cut_at)
        carry = t.slice(cut_at)
    if carry is not None and carry.num_rows:
        yield carry
