"""Deploying the stack to AWS: one module per stack unit (queues, storage, roles, layer, functions,
monitoring), each owning its plan and its teardown; `plan` (the plan/apply machinery), `resources` (what
the queues, table and bucket are), `iam` (policy documents) and `policy_check` (the least-privilege check),
`units` (their order), `cli` (what every deploy script shares).
"""
