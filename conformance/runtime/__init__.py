"""The runtime conformance suite: lifecycle, operations, hooks, isolation, filesystem,
devices, process and limits, each test marked with the requirements it checks."""
