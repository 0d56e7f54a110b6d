"""The dataset's Arrow/Parquet schema, built from the record's field table (record.FIELDS)."""

from __future__ import annotations

import pyarrow as pa
from hpcwatch.accounting.record import FIELDS, GPU_FIELDS, NODE_FIELDS, JobSummary

_SCALARS = {"string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(),
            "float64": pa.float64(), "float32": pa.float32(), "timestamp": pa.timestamp("ms", tz="UTC")}
NODE_TYPE = pa.struct([(n, _SCALARS[t]) for n, t in NODE_FIELDS])
GPU_TYPE = pa.struct([(n, _SCALARS[t]) for n, t in GPU_FIELDS])
_TYPES = {**_SCALARS, "list<node>": pa.list_(NODE_TYPE), "list<gpu>": pa.list_(GPU_TYPE),
          "list<string>": pa.list_(pa.string())}

SCHEMA = pa.schema([(name, _TYPES[t]) for name, (t, _) in FIELDS.items()])


def to_table(summaries: list[JobSummary]) -> pa.Table:
    """Summaries as an Arrow table in the dataset's schema."""
    return pa.Table.from_pylist([s.to_row() for s in summaries], schema=SCHEMA)
