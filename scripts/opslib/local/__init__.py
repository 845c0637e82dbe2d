"""The embedded default: `emulator` (moto on 127.0.0.1, `emulator_server`), `snapshot` (its state kept in
.local-aws/), `provision` (the stack on it, through the deploy planners), `pollers` (processes that call
the real handlers with SQS event shapes), `faults` (fault injection for the chaos suite and tests) and
`runtime` (all of it up for one `with` block)."""
