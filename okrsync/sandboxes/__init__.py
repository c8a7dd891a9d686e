"""Local, loopback-only stand-ins for SaaS sources, like stripe-mock for Stripe: HTTPS servers over a
seeded org that the real clients talk to, with fault injection (errors, throttling, cut connections).

They are product: ``okrsync sandbox salesforce`` and ``okrsync demo`` serve them, and okrsync's own
tests use them (the pytest fixtures are in ``tests/sandboxes``). :mod:`.https` and :mod:`.tls` are the
server and certificates they share; :mod:`.salesforce` and :mod:`.bamboohr` the two systems.
"""
