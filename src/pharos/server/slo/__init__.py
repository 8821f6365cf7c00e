"""Service level objectives per agent (issue 9): success ratio or latency under a threshold,
with error budgets and burn rates over windows, computed from the rollups (analytics), usable in
alert rules as ``slo_burn(...)`` and ``slo_attainment(...)``. See docs/interop.md."""
