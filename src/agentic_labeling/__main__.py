"""`python -m agentic_labeling` is `alabel`."""

from agentic_labeling.cli import main

main()
