"""pytest fixtures for the loopback sandboxes, which themselves ship in ``okrsync.sandboxes``."""
