"""The cluster conformance suite: API semantics, watch, deletion, scheduling,
reconciliation and pods, each test marked with the requirements it checks."""
