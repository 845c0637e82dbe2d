"""The chaos scenarios of benchmarks/chaos.py, one module each (`duplicates`, `kills`, `collector`,
`poison`, `retryable`, `restart`), their shared pieces (`common`) and the audit against a clean run
(`audit`). They run on `opslib.local.testbed.Testbed`, the harness the end-to-end tests use too."""
