"""The data plane's formats: one schema module and the shard readers/writers."""

from ouro_ray.data.schemas import SHARDS, Column, ShardSpec, shard_spec
from ouro_ray.data.shards import (
    BadRecord,
    ShardError,
    ShardRead,
    infer_kind,
    read_shard,
    scan_shard,
    table_to_records,
    to_table,
    write_shard,
)
from ouro_ray.data.validate import BatchSchemaError, bad_row_mask, record_problems, validate_batch

__all__ = [
    "SHARDS", "BatchSchemaError", "Column", "ShardSpec", "shard_spec", "validate_batch", "bad_row_mask",
    "record_problems",
    "BadRecord", "ShardError", "ShardRead", "infer_kind", "read_shard", "scan_shard",
    "table_to_records", "to_table", "write_shard",
]
