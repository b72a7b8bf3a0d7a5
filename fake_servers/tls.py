"""TLS material for one run: a private CA, the certificates it signs, and the broken ones.

A run makes one :class:`TLSMaterial`; clients are pointed at :attr:`TLSMaterial.ca_file` and
must trust nothing else. Negative certificates (expired, wrong host, another CA, self-signed)
and servers that offer only TLS 1.0/1.1 are what the TLS scenarios serve.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import ssl
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import trustme

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


class CertKind(str, enum.Enum):
    """Which certificate a server presents."""

    VALID = "valid"
    EXPIRED = "expired"
    WRONG_HOST = "wrong-host"
    UNTRUSTED = "untrusted"  # signed by a CA the client was not given
    SELF_SIGNED = "self-signed"


class TLSVersions(str, enum.Enum):
    """Which protocol versions a server accepts."""

    MODERN = "modern"  # TLS 1.2 and 1.3
    LEGACY_ONLY = "legacy-only"  # TLS 1.0 and 1.1 only (RFC 8996 forbids them)


@dataclass(frozen=True)
class ServerCert:
    """A certificate chain and key in PEM, as a server presents them."""

    kind: CertKind
    chain_pem: bytes  # leaf first
    key_pem: bytes

    def ssl_context(self, versions: TLSVersions = TLSVersions.MODERN) -> ssl.SSLContext:
        """A standard-library server context (for asyncio servers such as aiosmtpd)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as chain, tempfile.NamedTemporaryFile(
            "wb", suffix=".pem"
        ) as key:
            chain.write(self.chain_pem)
            key.write(self.key_pem)
            chain.flush()
            key.flush()
            ctx.load_cert_chain(chain.name, key.name)
        if versions is TLSVersions.LEGACY_ONLY:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():  # deprecated on purpose: this server exists to offer them
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def twisted_context_factory(self, versions: TLSVersions = TLSVersions.MODERN) -> "_OpenSSLServerContext":
        """A context factory for Twisted's ``listenSSL`` and ``startTLS``."""
        return _OpenSSLServerContext(self, versions)


def sni_context_factory(default: ServerCert, by_name: "dict[str, ServerCert]",
                        versions: TLSVersions = TLSVersions.MODERN) -> "_OpenSSLServerContext":
    """A Twisted context factory that presents ``by_name[server_name]`` to a client asking for
    that name (SNI), and ``default`` otherwise: one port, a different certificate per host."""
    factory = _OpenSSLServerContext(default, versions)
    contexts = {name.lower(): _OpenSSLServerContext(cert, versions).getContext() for name, cert in by_name.items()}

    def pick(connection) -> None:
        name = connection.get_servername()
        chosen = contexts.get(name.decode("ascii", "replace").lower()) if name else None
        if chosen is not None:
            connection.set_context(chosen)

    if contexts:
        factory.getContext().set_tlsext_servername_callback(pick)
    return factory


def _context_factory_interface():
    from twisted.internet.interfaces import IOpenSSLContextFactory

    return IOpenSSLContextFactory


class _OpenSSLServerContext:
    """Builds the pyOpenSSL context once; Twisted asks for it per connection.

    Declared an ``IOpenSSLContextFactory`` so Twisted uses it as is (without the declaration
    it warns and wraps it as a legacy factory).
    """

    def __init__(self, cert: ServerCert, versions: TLSVersions) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from OpenSSL import SSL

        ctx = SSL.Context(SSL.TLS_METHOD)
        if versions is TLSVersions.LEGACY_ONLY:
            ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
            ctx.set_min_proto_version(SSL.TLS1_VERSION)
            ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
        else:
            ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        pems = _split_pem(cert.chain_pem)
        ctx.use_certificate(x509.load_pem_x509_certificate(pems[0]))
        for extra in pems[1:]:
            ctx.add_extra_chain_cert(x509.load_pem_x509_certificate(extra))
        ctx.use_privatekey(serialization.load_pem_private_key(cert.key_pem, password=None))
        ctx.check_privatekey()
        self._context = ctx

    def getContext(self):  # noqa: N802 - Twisted's interface name
        return self._context


try:
    from zope.interface import classImplements

    classImplements(_OpenSSLServerContext, _context_factory_interface())
except ImportError:  # Twisted is optional for stdlib-only users of the material
    pass


def _common_name(names: tuple[str, ...]) -> str | None:
    """The subject commonName of a leaf for ``names``: the first DNS name among them.

    Real providers' certificates carry one, and some clients still insist on it (offlineimap's
    imaplib2 refuses a certificate without a commonName before it looks at the DNS
    subjectAltNames). RFC 6125 clients ignore it when subjectAltNames are present, so it
    changes nothing for them. IP addresses stay in the subjectAltName only (a certificate for
    IP addresses alone has no commonName).
    """
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
    return None


def _split_pem(blob: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [part + marker + b"\n" for part in blob.split(marker) if b"-----BEGIN" in part]


class TLSMaterial:
    """A private CA for one run, its PEM file on disk, and server certificates of every kind.

    >>> material = TLSMaterial()
    >>> cert = material.server_cert()               # valid for localhost/127.0.0.1/::1
    >>> bad = material.server_cert(CertKind.EXPIRED)
    >>> material.ca_file                            # give this path to the client
    """

    def __init__(self, directory: str | Path | None = None, hostnames: Iterable[str] = DEFAULT_HOSTS) -> None:
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mailconform-tls-")
            directory = self._tmp.name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hostnames = tuple(hostnames)
        self.ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem.bytes())
        self._cache: dict[tuple, ServerCert] = {}

    def server_cert(self, kind: CertKind | str = CertKind.VALID, hostnames: Iterable[str] | None = None) -> ServerCert:
        """A certificate of ``kind`` for ``hostnames`` (default: the run's loopback names)."""
        kind = CertKind(kind)
        names = tuple(hostnames) if hostnames is not None else self.hostnames
        key = (kind, names)
        if key not in self._cache:
            self._cache[key] = self._issue(kind, names)
        return self._cache[key]

    def server_cert_for_names(self, names: Iterable[str], kind: CertKind | str = CertKind.VALID) -> ServerCert:
        """A certificate of ``kind`` for a scenario's names (``autodiscover.example.test``…) and
        the run's loopback names, so one HTTPS server can serve every name by its Host header."""
        merged = dict.fromkeys([*names, *self.hostnames])
        return self.server_cert(kind, tuple(merged))

    def client_context(self) -> ssl.SSLContext:
        """What a conformant client uses: verify against the run's CA only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _issue(self, kind: CertKind, names: tuple[str, ...]) -> ServerCert:
        if kind is CertKind.SELF_SIGNED:
            lone = trustme.CA(key_type=trustme.KeyType.ECDSA)
            return ServerCert(kind, lone.cert_pem.bytes(), lone.private_key_pem.bytes())
        issuer = trustme.CA(key_type=trustme.KeyType.ECDSA) if kind is CertKind.UNTRUSTED else self.ca
        extra = {}
        if kind is CertKind.EXPIRED:
            now = datetime.datetime.now(datetime.timezone.utc)
            extra = {"not_before": now - datetime.timedelta(days=60), "not_after": now - datetime.timedelta(days=1)}
        if kind is CertKind.WRONG_HOST:
            names = ("wrong-host.invalid",)
        leaf = issuer.issue_cert(*names, common_name=_common_name(names), key_type=trustme.KeyType.ECDSA, **extra)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return ServerCert(kind, chain, leaf.private_key_pem.bytes())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
