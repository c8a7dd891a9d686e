"""Local, loopback-only stand-ins for external systems (test servers the real clients talk to)."""
