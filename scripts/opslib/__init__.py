"""The scripts' library, one package per subsystem: `deploy` (plan/apply, one module per stack unit),
`batch` (running a batch on any target), `local` (the embedded default), `history` (result queries); and
what they share: `stack` (typed config/stack.yaml), `errors`, `cli` (exit statuses). See
docs/architecture.md."""
