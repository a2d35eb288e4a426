"""``python -m vpsbench`` runs the command line."""

from vpsbench.cli import main

main()
