"""``python -m cli`` runs the syncbus command line."""

from cli.main import main

main()
