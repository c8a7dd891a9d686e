"""The ``okrsync`` command line (:mod:`okrsync.cli.app`), one module per group of commands.

Every module takes what the commands share (consoles, options, the project and its store) from
:mod:`okrsync.cli.context`; none imports another's private names.
"""

from okrsync.cli.app import app, main

__all__ = ["app", "main"]
