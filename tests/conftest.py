"""Shared fixtures: a running fake provider with a known account, and clients pointed at it."""

from __future__ import annotations

import datetime
import ssl

import pytest

from fake_servers import FakeProvider
from fake_servers.imap.config import ImapConfig

USER = "alice@example.test"
PASSWORD = "correct horse"

SIMPLE = (
    b"From: Bob <bob@example.test>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: Hello\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <hello-1@example.test>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
)


def sample_message(n: int) -> bytes:
    return (
        b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
        b"Subject: Message %d\r\nDate: Mon, 01 Jan 2024 10:%02d:00 +0000\r\n"
        b"Message-ID: <m%d@example.test>\r\n\r\nBody of message %d.\r\n" % (n, n % 60, n, n)
    )


def populate(provider: FakeProvider, count: int = 5) -> None:
    def fill():
        account = provider.store.add_account(USER, PASSWORD, app_passwords=("app-secret",))
        inbox = account.folder("INBOX")
        for n in range(1, count + 1):
            inbox.append(sample_message(n), flags=("\\Seen",) if n % 2 else (),
                         internal_date=datetime.datetime(2024, 1, n, 10, 0, tzinfo=datetime.timezone.utc))

    provider.call(fill)


@pytest.fixture
def make_provider():
    """Factory for started providers, all stopped at teardown."""
    started: list[FakeProvider] = []

    def make(*, messages: int = 5, **options) -> FakeProvider:
        provider = FakeProvider(**options).start()
        started.append(provider)
        if messages is not None:
            populate(provider, messages)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def provider(make_provider) -> FakeProvider:
    return make_provider()


@pytest.fixture
def client_ssl(provider) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(provider.ca_file))


@pytest.fixture
def imap(provider, client_ssl):
    """An imapclient client logged in over STARTTLS, verifying the run's CA."""
    import imapclient

    client = imapclient.IMAPClient(provider.host, port=provider.imap_port, ssl=False, timeout=10)
    client.starttls(client_ssl)
    client.login(USER, PASSWORD)
    yield client
    try:
        client.logout()
    except Exception:
        pass


__all__ = ["USER", "PASSWORD", "SIMPLE", "ImapConfig", "sample_message"]
