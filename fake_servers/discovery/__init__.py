"""Discovery fakes: DNS, Exchange POX Autodiscover, Mozilla autoconfig and an OAuth 2.0 token
endpoint, for one scenario's names, on loopback, on the shared loop, every request recorded.

>>> from fake_servers.discovery import Discovery, discovery_config, resolve_to_fakes
>>> config = discovery_config({
...     "domain": "example.test",
...     "autodiscover": {"autodiscover": {"answer": "success"},
...                      "http": {"answer": "http_redirect"}},
...     "autoconfig": {},                                   # the default entries: IMAP and SMTP over TLS
...     "srv": [{"service": "_imaps._tcp", "target": "imap.example.test", "port": "imaps"},
...             {"service": "_imap._tcp", "target": "."}],  # "." : not available
...     "oauth": {"lifetime": 300, "uses": 1},
... })
>>> discovery = Discovery(config, tls=provider.tls, wire=provider.wire, store=provider.store,
...                       endpoints={"imap": provider.imap_port, "imaps": provider.imaps_port}).start()
>>> discovery.dns_address          # MAILCONFORM_DNS, "127.0.0.1:PORT" (UDP and TCP)
>>> discovery.connect_to_env       # MAILCONFORM_CONNECT_TO, curl --connect-to entries, comma-separated
>>> discovery.token_url            # MAILCONFORM_OAUTH_TOKEN_URL
>>> with resolve_to_fakes(discovery.connect_to):   # an in-process client reaches the fakes by name
...     urllib.request.urlopen("https://autoconfig.example.test/mail/config-v1.1.xml",
...                            context=ssl.create_default_context(cafile=provider.ca_file))
>>> discovery.stop()

Every DNS query and HTTP request lands in ``wire`` (protocol ``"dns"`` / ``"http"``);
:func:`recorded_request` reads an HTTP record back into method, host and path.
"""

from .config import (ANSWERS, NATIONAL_CLOUDS, AutoconfigServer, AutodiscoverAnswer, DiscoveryConfig,
                     DiscoveryConfigError, OAuthConfig, ServerSetting, SrvRecord, discovery_config,
                     load_discovery_file)
from .http_messages import RecordedRequest, recorded_request
from .names import connect_to_entries, resolve_to_fakes
from .oauth import HS256_TEST_KEY, Grant, make_jwt, read_jwt
from .service import Discovery

__all__ = [
    "ANSWERS", "AutoconfigServer", "AutodiscoverAnswer", "Discovery", "DiscoveryConfig", "DiscoveryConfigError",
    "Grant", "HS256_TEST_KEY", "NATIONAL_CLOUDS", "OAuthConfig", "RecordedRequest", "ServerSetting", "SrvRecord",
    "connect_to_entries", "discovery_config", "load_discovery_file", "make_jwt", "read_jwt", "recorded_request",
    "resolve_to_fakes",
]
