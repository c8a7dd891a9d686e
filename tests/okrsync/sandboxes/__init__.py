"""Tests of the sandboxes behind ``okrsync sandbox`` and the demo (``okrsync.sandboxes``)."""
