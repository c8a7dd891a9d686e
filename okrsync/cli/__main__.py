"""``python -m okrsync.cli``: the same as the ``okrsync`` command."""

from okrsync.cli.app import main

main()
