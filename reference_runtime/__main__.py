"""``python -m reference_runtime``: the reference-runtime CLI."""

from .cli import main

main()
