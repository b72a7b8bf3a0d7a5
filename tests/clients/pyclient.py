"""Python clients for the python adapter: they succeed, raise, exit, or hang."""

import os
import sys
import threading

RELEASE = threading.Event()  # lets a hung client go once its test is over
NOT_CALLABLE = 42


def ok(ctx):
    """Leave proof that it ran with this context and without MAILCONFORM_* in os.environ."""
    seen = os.environ.get("MAILCONFORM_SCENARIO", "<unset>")
    (ctx.maildir / "ran").write_text(f"{ctx.scenario} {ctx.run} {ctx.imap_port} {seen}")
    return "ignored"


def boom(ctx):
    raise RuntimeError(f"cannot sync {ctx.imap_host}")


def exits(ctx):
    sys.exit(4)


def hang(ctx):
    RELEASE.wait()


class Client:
    @staticmethod
    def sync(ctx):
        (ctx.maildir / "ran").write_text("Client.sync")


def resolves(ctx):
    """Record where the scenario's names lead while it runs, and that other names fail."""
    import socket

    found = socket.getaddrinfo("imap.example.test", 993, type=socket.SOCK_STREAM)[0][4]
    try:
        socket.getaddrinfo("example.com", 443)
        other = "resolved"
    except socket.gaierror:
        other = "refused"
    (ctx.maildir / "ran").write_text(f"{found[0]}:{found[1]} example.com {other}")
