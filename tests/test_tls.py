"""TLS material and versions, judged by real verifying clients on both implicit TLS and STARTTLS.

A certificate kind is only useful to the scenarios if a conformant client rejects it for the
stated reason (and accepts the valid one), so each kind is checked against Python's ssl
module with the run's CA, the way a careful client is configured.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import warnings

import imapclient
import pytest

from fake_servers import CertKind, FakeProvider, TLSMaterial, TLSVersions

from .conftest import PASSWORD, USER
from .netutil import RawClient, twisted_errors  # noqa: F401


@pytest.fixture(autouse=True)
def _no_server_errors(twisted_errors):
    """A refused handshake is the client's business; the fake must take it quietly."""


@pytest.fixture(scope="module")
def material():
    """One CA for the module: every provider below serves certificates it issued."""
    tls = TLSMaterial()
    yield tls
    tls.close()


@pytest.fixture
def serve(material):
    started = []

    def start(**options) -> FakeProvider:
        provider = FakeProvider(tls=material, **options).start()
        started.append(provider)
        provider.add_account(USER, PASSWORD)
        return provider

    yield start
    for provider in started:
        provider.stop()


# What OpenSSL says when it rejects each kind, as a verifying client sees it.
REJECTIONS = {
    CertKind.EXPIRED: "certificate has expired",
    CertKind.WRONG_HOST: "mismatch",  # "Hostname mismatch" / "IP address mismatch"
    CertKind.UNTRUSTED: "unable to get local issuer certificate",
    CertKind.SELF_SIGNED: "self-signed certificate",
}


def implicit_handshake(provider, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", provider.imaps_port), timeout=5)
    try:
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def starttls_handshake(provider, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> ssl.SSLSocket:
    raw = RawClient(provider.imap_port)
    raw.line()
    lines = raw.command("s", "STARTTLS")
    assert lines == [b"s OK Begin TLS negotiation now.\r\n"]
    try:
        return ctx.wrap_socket(raw.sock, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


HANDSHAKES = {"implicit": implicit_handshake, "starttls": starttls_handshake}


@pytest.mark.parametrize("how", HANDSHAKES)
@pytest.mark.parametrize("kind", list(REJECTIONS))
def test_bad_certificates_fail_verification(serve, material, kind, how):
    provider = serve(cert=kind)
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        HANDSHAKES[how](provider, material.client_context())
    assert REJECTIONS[kind] in err.value.verify_message
    conn = provider.wire.wait_for_connections(1, timeout=5)[0]
    assert conn.wait_closed(5)
    assert conn.tls_at is None  # the handshake never completed on the server either
    assert conn.commands == [] or [c.name for c in conn.commands] == ["STARTTLS"]


@pytest.mark.parametrize("how", HANDSHAKES)
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_the_valid_certificate_passes_verification(serve, material, how, hostname):
    provider = serve()
    with HANDSHAKES[how](provider, material.client_context(), server_hostname=hostname) as sock:
        sock.sendall(b"n NOOP\r\n")
        data = b""
        while b"n OK" not in data:
            data += sock.recv(4096)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("kind", list(CertKind))
def test_every_kind_is_served_to_a_client_that_does_not_verify(serve, kind):
    """The negative certificates are real, working certificates: only verification fails."""
    provider = serve(cert=kind)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with implicit_handshake(provider, ctx) as sock:
        assert sock.recv(4096).startswith(b"* OK")
        leaf = sock.getpeercert(binary_form=True)
    assert leaf is not None


def test_imapclient_refuses_an_expired_certificate_before_sending_credentials(serve, material):
    provider = serve(cert=CertKind.EXPIRED)
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient("127.0.0.1", port=provider.imaps_port, ssl_context=material.client_context(), timeout=5)
    conn = provider.wire.wait_for_connections(1, timeout=5)[0]
    assert conn.wait_closed(5)
    assert conn.bytes_received == 0 and provider.wire.credentials_before_tls() == []


def test_certificates_are_issued_once_per_kind(material):
    assert material.server_cert(CertKind.VALID) is material.server_cert("valid")
    assert material.server_cert(CertKind.EXPIRED) is not material.server_cert(CertKind.VALID)


def _leaf(cert):
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert.chain_pem)


def _names(leaf) -> tuple[list[str], list[str]]:
    """(subject commonNames, subjectAltNames as ``DNS:…`` / ``IP:…``) of a leaf."""
    import ipaddress

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cns = [attr.value for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    sans = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
    sans += [f"IP:{ipaddress.ip_address(a)}" for a in san.get_values_for_type(x509.IPAddress)]
    return cns, sans


@pytest.mark.parametrize("kind", [CertKind.VALID, CertKind.EXPIRED, CertKind.UNTRUSTED])
def test_every_leaf_has_a_dns_common_name_and_the_same_subject_alt_names(material, kind):
    """A commonName as real providers' certificates have (offlineimap refuses a certificate
    without one), the first DNS name, never an IP address; the subjectAltNames, which RFC 6125
    clients match, stay exactly the names asked for."""
    cns, sans = _names(_leaf(material.server_cert(kind)))
    assert cns == ["localhost"]
    assert sans == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]

    cns, sans = _names(_leaf(material.server_cert(kind, hostnames=["127.0.0.1", "imap.example.test", "mail.example.test"])))
    assert cns == ["imap.example.test"]
    assert sans == ["DNS:imap.example.test", "DNS:mail.example.test", "IP:127.0.0.1"]

    cns, sans = _names(_leaf(material.server_cert_for_names(["autodiscover.example.test"], kind)))
    assert cns == ["autodiscover.example.test"]
    assert sans == ["DNS:autodiscover.example.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]


def test_the_wrong_host_leaf_names_its_wrong_host(material):
    cns, sans = _names(_leaf(material.server_cert(CertKind.WRONG_HOST)))
    assert cns == ["wrong-host.invalid"] and sans == ["DNS:wrong-host.invalid"]


def test_a_leaf_for_ip_addresses_alone_has_no_common_name(material):
    cns, sans = _names(_leaf(material.server_cert(hostnames=["127.0.0.1", "::1"])))
    assert cns == [] and sans == ["IP:127.0.0.1", "IP:::1"]


def test_stdlib_server_context_serves_the_same_certificates(material):
    """``ServerCert.ssl_context`` (for asyncio servers such as aiosmtpd) verifies the same way."""
    for kind, expected in [(CertKind.VALID, None), *REJECTIONS.items()]:
        server_ctx = material.server_cert(kind).ssl_context()
        outcome = _stdlib_handshake(server_ctx, material.client_context())
        if expected is None:
            assert outcome == "ok", kind
        else:
            assert isinstance(outcome, ssl.SSLCertVerificationError) and expected in outcome.verify_message, kind


def _stdlib_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str = "localhost"):
    """One handshake between two stdlib contexts over a loopback socket pair."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors = []

    def accept():
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as sock:
            with client_ctx.wrap_socket(sock, server_hostname=hostname) as tls:
                assert tls.recv(5) == b"hello"
                return "ok"
    except (ssl.SSLError, OSError) as exc:
        return exc
    finally:
        thread.join(5)
        listener.close()


# -- versions ------------------------------------------------------------------------------------


def legacy_client(material, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A verifying client that speaks only ``version``, with the security level lowered so
    OpenSSL 3 allows the SHA-1 signatures TLS 1.0/1.1 need."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = material.client_context()
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


@functools.cache
def _platform_speaks(version: ssl.TLSVersion) -> str | None:
    """Why this platform's OpenSSL cannot complete a ``version`` handshake at all (None if it can),
    found with two stdlib endpoints, so a skip never hides a defect of the fake."""
    name = version.name
    if not getattr(ssl, f"HAS_{name}", False):
        return f"this Python's OpenSSL ({ssl.OPENSSL_VERSION}) was built without {name}"
    material = TLSMaterial()
    try:
        server = material.server_cert().ssl_context(TLSVersions.LEGACY_ONLY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            server.maximum_version = version
        outcome = _stdlib_handshake(server, legacy_client(material, version))
    finally:
        material.close()
    if outcome != "ok":
        return f"{ssl.OPENSSL_VERSION} refuses {name} even at SECLEVEL=0 between two stdlib endpoints: {outcome}"
    return None


@pytest.mark.parametrize("how", HANDSHAKES)
def test_legacy_only_refuses_a_modern_only_client(serve, material, how):
    """imap.tls.legacy-only: a conformant client (TLS 1.2+) cannot connect."""
    provider = serve(tls_versions=TLSVersions.LEGACY_ONLY)
    ctx = material.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError) as err:
        HANDSHAKES[how](provider, ctx)
    assert "PROTOCOL_VERSION" in str(err.value).upper() or "UNSUPPORTED_PROTOCOL" in str(err.value).upper()


@pytest.mark.parametrize("how", HANDSHAKES)
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_legacy_only_accepts_an_old_client(serve, material, how, version):
    version = ssl.TLSVersion[version]
    reason = _platform_speaks(version)
    if reason:
        pytest.skip(reason)
    provider = serve(tls_versions=TLSVersions.LEGACY_ONLY)
    with HANDSHAKES[how](provider, legacy_client(material, version)) as sock:
        assert sock.version() == version.name.replace("_", ".")
    conn = provider.wire.connections[0]
    assert conn.tls_version == version.name.replace("_", ".")


@pytest.mark.parametrize("how", HANDSHAKES)
def test_modern_refuses_an_old_client(serve, material, how):
    if _platform_speaks(ssl.TLSVersion.TLSv1_1):
        pytest.skip("this platform cannot offer TLS 1.1 at all, so there is nothing to refuse")
    provider = serve()
    with pytest.raises(ssl.SSLError):
        HANDSHAKES[how](provider, legacy_client(material, ssl.TLSVersion.TLSv1_1))


def test_imapclient_syncs_over_starttls_with_the_run_ca(serve, material):
    provider = serve()
    client = imapclient.IMAPClient("localhost", port=provider.imap_port, ssl=False, timeout=5)
    client.starttls(material.client_context())
    client.login(USER, PASSWORD)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    assert provider.wire.credentials_before_tls() == []
