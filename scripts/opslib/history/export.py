"""Every result of a batch to one file (csv, parquet, json), one job's rows in memory at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from .compute import ExportSchema
from .queries import HistoryError

FORMATS = ("csv", "parquet", "json")


_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean", "str": "object"}


def compute_typed(frame: pd.DataFrame, schema: ExportSchema) -> pd.DataFrame:
    """A job's rows in the export's columns and types (a column the job lacks is empty)."""
    unknown = set(frame.columns) - set(schema.columns)
    if unknown:
        raise HistoryError(
            f"job {frame['job_id'].iloc[0]} has columns {sorted(unknown)} its job record's best row lacks; "
            "export with --format json, which needs no schema."
        )
    typed = frame.reindex(columns=schema.columns)
    types = {f"param.{p}": _DTYPES[kind] for p, kind in schema.params.items()}
    types.update(dict.fromkeys(schema.metrics, "float64"))
    try:
        return typed.astype(types)
    except (TypeError, ValueError) as exc:
        raise HistoryError(
            f"job {frame['job_id'].iloc[0]} has values that do not fit the export's column types ({exc}); "
            "export with --format json, which needs no schema."
        ) from exc


def store_export(
    frames: Iterable[pd.DataFrame], schema: ExportSchema, fmt: str, out: Path
) -> tuple[int, int]:
    """Write every frame to `out`, one frame in memory at a time, through a temporary file renamed at the
    end (a failed export leaves no partial file). Returns (rows, jobs)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        counts = EXPORTERS[fmt](frames, schema, partial)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts


def _export_csv(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    rows = jobs = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(columns=schema.columns).to_csv(handle, index=False)
        for frame in frames:
            compute_typed(frame, schema).to_csv(handle, header=False, index=False)
            rows, jobs = rows + len(frame), jobs + 1
    return rows, jobs


def _export_json(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    """A JSON array of flat rows (each job's own columns: a strategy's parameters only)."""
    rows = jobs = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for frame in frames:
            if not frame.empty:
                records = frame.to_json(orient="records", double_precision=15)
                handle.write(("," if rows else "") + records[1:-1])
            rows, jobs = rows + len(frame), jobs + 1
        handle.write("]\n")
    return rows, jobs


def _export_parquet(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    import pyarrow as pa  # noqa: PLC0415 - only this export needs pyarrow (slow to import)
    import pyarrow.parquet as pq  # noqa: PLC0415

    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    fields = [pa.field(name, pa.string()) for name in ("job_id", "strategy", "symbol")]
    fields += [pa.field(f"param.{p}", types[kind]) for p, kind in schema.params.items()]
    fields += [pa.field(m, pa.float64()) for m in schema.metrics]
    if schema.extras:
        fields.append(pa.field("extras", pa.string()))
    arrow_schema = pa.schema(fields)
    rows = jobs = 0
    with pq.ParquetWriter(path, arrow_schema) as writer:
        for frame in frames:
            typed = compute_typed(frame, schema)
            writer.write_table(pa.Table.from_pandas(typed, schema=arrow_schema, preserve_index=False))
            rows, jobs = rows + len(frame), jobs + 1
    return rows, jobs


EXPORTERS: dict[str, Callable[[Iterable[pd.DataFrame], ExportSchema, Path], tuple[int, int]]] = {
    "csv": _export_csv,
    "json": _export_json,
    "parquet": _export_parquet,
}
