"""Fake mail providers on real sockets: IMAP (and, later, SMTP and discovery) with scripted faults.

Nothing here knows about pytest or verdicts; a person can run one by hand with
``mailconform serve`` and point any mail client at it.
"""

from .provider import FakeProvider
from .tls import CertKind, TLSMaterial, TLSVersions

__all__ = ["CertKind", "FakeProvider", "TLSMaterial", "TLSVersions"]
