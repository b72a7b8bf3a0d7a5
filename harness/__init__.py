"""The conformance harness: scenarios, client adapters, checks, verdicts, reports, CLI.

It knows nothing of sockets: it asks the fakes (``fake_servers``) what happened.
"""
