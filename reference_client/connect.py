"""Opening a connection secured as configured, before any credential is sent.

Three modes: ``tls`` (implicit TLS from the first byte), ``starttls`` (plaintext greeting,
then STARTTLS, and nothing secret until the handshake is done), ``none`` (plaintext, as
configured). Certificates are checked against ``MAILCONFORM_CA_FILE`` only, with the host
name, TLS 1.2 or newer. Any doubt about TLS ends the run with exit status 3.

STARTTLS and data pipelined behind its ``OK``: imaplib reads through a buffered file, so
lines a man in the middle (or a broken server) sends in plaintext right after the ``OK``
can already sit in that buffer or in the socket when the handshake starts. Just before the
handshake this module throws all of it away (the file's buffer and whatever the socket
holds, read without waiting), together with every untagged response received before TLS,
and says so on stderr. Bytes arriving later than that are read by the handshake as a
malformed TLS record, which fails the handshake (exit 3). Either way nothing received in
plaintext is acted on. Capabilities are then asked for again over TLS (RFC 3501 §6.2.1).
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import sys

from imapclient import IMAPClient
from imapclient.util import to_unicode
from imapclient.imapclient import SocketTimeout

from .config import Config
from .errors import EXIT_ERROR, EXIT_INSECURE, EXIT_UNAVAILABLE, ClientError, Retry, has_code, server_text

CONNECT_TIMEOUT = 3.0  # TCP connect, TLS handshake and greeting (ample on loopback, where the fakes are)
READ_TIMEOUT = 60.0  # any one response once connected

REFUSE = "refusing to send credentials in plaintext"


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Trust ``ca_file`` alone (no system roots), check the host name, TLS 1.2 or newer."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def capabilities(client: IMAPClient) -> set[str]:
    """What the server offers before authentication, upper-cased.

    imaplib keeps the list it asked for at connect time, and asks again over TLS right after
    STARTTLS (with the plaintext responses already discarded, see above); reading that list
    saves the second CAPABILITY imapclient would send.
    """
    return {to_unicode(c).upper() for c in client._imap.capabilities}


def preauthenticated(client: IMAPClient) -> bool:
    return client.welcome.upper().startswith(b"* PREAUTH")


def open_connection(config: Config) -> IMAPClient:
    """A connection secured as ``config.security`` says, not yet authenticated (unless the
    server greeted with PREAUTH where that is acceptable)."""
    context = tls_context(config.ca_file)
    where = f"{config.host}:{config.port}"
    try:
        client = IMAPClient(config.host, port=config.port, ssl=config.security == "tls", ssl_context=context,
                            timeout=SocketTimeout(CONNECT_TIMEOUT, READ_TIMEOUT))
    except ssl.SSLCertVerificationError as exc:
        raise ClientError(EXIT_INSECURE, f"invalid certificate from {where}: {exc.verify_message}; "
                                         f"{REFUSE}") from None
    except ssl.SSLError as exc:
        raise ClientError(EXIT_INSECURE, f"TLS handshake with {where} failed ({exc.reason or exc}); "
                                         "is it an implicit-TLS port offering TLS 1.2 or newer?") from None
    except ConnectionRefusedError:
        raise ClientError(EXIT_ERROR, f"connection refused by {where}") from None
    except TimeoutError:
        raise ClientError(EXIT_ERROR, f"no IMAP greeting from {where} within {CONNECT_TIMEOUT:g} s "
                                      "(wrong port or security setting, or a firewall?)") from None
    except imaplib.IMAP4.abort as exc:
        raise Retry(f"connection to {where} lost before the greeting: {server_text(exc)}") from None
    except imaplib.IMAP4.error as exc:  # the greeting was BYE or NO, or not IMAP4rev1
        raise _greeting_refused(where, server_text(exc)) from None
    except OSError as exc:
        if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            raise Retry(f"connection to {where} lost before the greeting: {exc}") from None
        raise ClientError(EXIT_ERROR, f"cannot connect to {where}: {exc}") from None
    if config.security == "starttls":
        try:
            start_tls(client, context)
        except BaseException:
            close(client)
            raise
    return client


def _greeting_refused(where: str, text: str) -> Exception:
    if has_code(text, "OVERQUOTA"):
        return ClientError(EXIT_UNAVAILABLE, f"{where} refused the connection: {text}")
    if "IMAP4 COMPLIANT" in text.upper():
        return ClientError(EXIT_ERROR, f"{where} is not an IMAP4rev1 server: {text}")
    return Retry(f"{where} refused the connection: {text}", kind="greeting")


def start_tls(client: IMAPClient, context: ssl.SSLContext) -> None:
    """Upgrade with STARTTLS or refuse (exit 3); afterwards only post-TLS capabilities count."""
    if preauthenticated(client):
        raise ClientError(EXIT_INSECURE, "server greeted with PREAUTH on a plaintext connection, so STARTTLS "
                                         "is impossible (a STARTTLS-stripping attack?); refusing to continue "
                                         "without TLS")
    if "STARTTLS" not in capabilities(client):
        raise ClientError(EXIT_INSECURE, f"server does not offer STARTTLS; {REFUSE}")
    guard = _DiscardPlaintext(context, client._imap)
    try:
        client.starttls(guard)
    except ssl.SSLCertVerificationError as exc:
        raise ClientError(EXIT_INSECURE, f"invalid certificate after STARTTLS: {exc.verify_message}; "
                                         f"{REFUSE}") from None
    except ssl.SSLError as exc:
        raise ClientError(EXIT_INSECURE, f"TLS handshake after STARTTLS failed ({exc.reason or exc}); "
                                         f"{REFUSE}") from None
    except (imaplib.IMAP4.abort, OSError) as exc:
        raise ClientError(EXIT_INSECURE, f"connection lost during STARTTLS ({server_text(exc)}); "
                                         f"{REFUSE}") from None
    except imaplib.IMAP4.error as exc:
        raise ClientError(EXIT_INSECURE, f"server refused STARTTLS ({server_text(exc)}); {REFUSE}") from None
    if guard.discarded:
        print(f"reference_client: warning: discarded {guard.discarded} bytes the server sent in plaintext "
              "after the STARTTLS OK (possible response injection)", file=sys.stderr)


class _DiscardPlaintext:
    """Stands in for the SSL context while imaplib wraps the socket after STARTTLS ``OK``:
    first drops everything received in plaintext, then lets the real context wrap."""

    def __init__(self, context: ssl.SSLContext, imap: imaplib.IMAP4) -> None:
        self.context = context
        self.imap = imap
        self.discarded = 0

    def wrap_socket(self, sock: socket.socket, *args, **kwargs) -> ssl.SSLSocket:
        self.discarded = discard_pending(getattr(self.imap, "file", None), sock)
        self.imap.untagged_responses.clear()
        return self.context.wrap_socket(sock, *args, **kwargs)


def discard_pending(buffered, sock: socket.socket) -> int:
    """Drop what is readable right now without waiting: the buffered reader's bytes and the
    socket's; returns how many bytes were dropped."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    dropped = 0
    try:
        if buffered is not None:
            try:
                dropped += len(buffered.peek(1) or b"")  # buffered bytes, or one read that does not wait
            except (BlockingIOError, OSError, ValueError):
                pass
        while True:
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            dropped += len(chunk)
    finally:
        sock.settimeout(timeout)
    return dropped


def close(client: IMAPClient) -> None:
    """Drop the connection without a word (used when it is broken or must not be trusted)."""
    try:
        client.shutdown()
    except Exception:
        pass
