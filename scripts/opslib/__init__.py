"""Shared code of the scripts a person runs: stack configuration, resource definitions, the local runtime."""
