"""Batch history, read back for `scripts/results.py`: `queries` (the table and bucket, read-only, no scans),
`compute` (pure computations over records and rows), `render` (markdown), `export` (files), `connect` (a
history on the embedded default or the deployed stack)."""
