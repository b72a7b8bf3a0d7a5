"""Mozilla autoconfig: the ``config-v1.1.xml`` document a scenario chose. No I/O.

Served at ``autoconfig.<domain>/mail/config-v1.1.xml`` (https and http) and at
``<domain>/.well-known/autoconfig/mail/config-v1.1.xml``. Entries are listed in the order
the scenario gives them, because clients take the first usable one; a plaintext-only list
is how the "never a plaintext-only entry" oracle is tested.
"""

from __future__ import annotations

from typing import Callable
from xml.sax.saxutils import escape

from .config import AutoconfigAnswer, AutoconfigConfig, AutoconfigServer, Port
from .http_messages import HttpReply, HttpRequest, redirect_reply, text_reply

PATH = "/mail/config-v1.1.xml"
WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"


def _server(element: str, server: AutoconfigServer, port: int) -> str:
    return (f'    <{element} type="{escape(server.type)}">\n'
            f"      <hostname>{escape(server.hostname)}</hostname>\n"
            f"      <port>{port}</port>\n"
            f"      <socketType>{escape(server.socket)}</socketType>\n"
            f"      <username>{escape(server.username)}</username>\n"
            f"      <authentication>{escape(server.authentication)}</authentication>\n"
            f"    </{element}>\n")


def document(config: AutoconfigConfig, domain: str, port_of: Callable[[Port], int]) -> bytes:
    name = config.display_name or domain
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1">\n',
             f'  <emailProvider id="{escape(domain)}">\n',
             f"    <domain>{escape(domain)}</domain>\n",
             f"    <displayName>{escape(name)}</displayName>\n",
             f"    <displayShortName>{escape(name)}</displayShortName>\n"]
    parts += [_server("incomingServer", s, port_of(s.port)) for s in config.incoming]
    parts += [_server("outgoingServer", s, port_of(s.port)) for s in config.outgoing]
    parts.append("  </emailProvider>\n</clientConfig>\n")
    return "".join(parts).encode("utf-8")


def answer(endpoint: AutoconfigAnswer, config: AutoconfigConfig, domain: str, request: HttpRequest,
           port_of: Callable[[Port], int], name: str) -> HttpReply:
    if request.method not in ("GET", "HEAD"):
        reply = text_reply(405, "Autoconfig takes GET.")
        reply.headers.append(("Allow", "GET, HEAD"))
        return reply
    kind = endpoint.answer
    if kind == "not_found":
        reply = text_reply(404, "Not Found")
    elif kind == "stall":
        return HttpReply(0, stall=True, note=f"autoconfig {name}: stall")
    elif kind == "reset":
        return HttpReply(0, reset=True, note=f"autoconfig {name}: reset")
    elif kind == "error":
        reply = text_reply(500, "Internal Server Error")
    elif kind == "unauthorized":
        reply = text_reply(401, "Unauthorized")
        reply.headers.append(("WWW-Authenticate", f'Basic realm="{request.host}"'))
    elif kind == "http_redirect":
        reply = redirect_reply(endpoint.location or "")
    else:
        reply = HttpReply(200, [("Content-Type", "application/xml; charset=utf-8")],
                          document(config, domain, port_of))
    reply.delay = endpoint.delay
    return reply
