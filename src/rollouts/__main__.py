"""`python -m rollouts` runs the CLI."""

from rollouts.cli.main import main

main()
