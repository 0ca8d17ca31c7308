"""Shared state of the group core: operations, merge rules, the journal."""
