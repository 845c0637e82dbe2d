"""Running batches, the same way on every target: `execute` (upload, register, send in waves, follow to
COMPLETE), `submitter`, `bars` (what a spec names), `reports` (report.md, results.csv, summary.json),
`aws` (the deployed stack as a target) and `projection` (wall time and cost of a batch on AWS)."""
