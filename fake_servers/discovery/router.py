"""Which discovery service answers a web request: by scheme, Host header and path. No I/O.

Both web servers (HTTPS and plain HTTP) serve every name of the scenario (virtual hosting);
this is where a request to ``http://autodiscover.example.test/autodiscover/autodiscover.xml``
becomes the scenario's ``http`` answer, one to ``https://example.test/.well-known/…`` the
autoconfig document, and so on. A Host the scenario does not have gets 421.
"""

from __future__ import annotations

from typing import Callable

from ..wire import ConnectionRecord
from . import autoconfig
from .autodiscover import PATH as AUTODISCOVER_PATH
from .autodiscover import Autodiscover
from .config import NATIONAL_CLOUDS, AutodiscoverAnswer, DiscoveryConfig, Port
from .http_messages import HttpReply, HttpRequest, text_reply
from .oauth import TokenEndpoint


class Router:
    def __init__(self, config: DiscoveryConfig, *, port_of: Callable[[Port], int],
                 autodiscover: Autodiscover, oauth: TokenEndpoint | None) -> None:
        self.config = config
        self.port_of = port_of
        self.autodiscover = autodiscover
        self.oauth = oauth
        self.names = set(config.all_names())
        # a host in a loop's cycle that has no answer of its own keeps the loop going
        self.loop_hosts: dict[str, AutodiscoverAnswer] = {}
        for answer in config.autodiscover.values():
            if answer.answer == "loop":
                for host in answer.hosts:
                    self.loop_hosts.setdefault(host, answer)
        self.national_hosts = set(NATIONAL_CLOUDS.values())

    def __call__(self, request: HttpRequest, record: ConnectionRecord) -> HttpReply:
        host = request.host
        if host not in self.names:
            return text_reply(421, f"This server does not serve {host or 'requests without a Host header'}.")
        path = request.path
        if path.lower() == AUTODISCOVER_PATH:
            return self._autodiscover(request, host)
        if path == autoconfig.PATH and host == self.config.autoconfig_host:
            return self._autoconfig("autoconfig" if request.scheme == "https" else "autoconfig_http", request)
        if path == autoconfig.WELL_KNOWN_PATH and host == self.config.domain and request.scheme == "https":
            return self._autoconfig("well_known", request)
        if self.oauth is not None and host == self.config.oauth_host and path == self.config.oauth.path:
            if request.scheme != "https":
                return text_reply(404, "The token endpoint is served over https only.")
            return self.oauth.handle(request)
        return text_reply(404, "Not Found")

    def _autodiscover(self, request: HttpRequest, host: str) -> HttpReply:
        endpoint, answer = self._autodiscover_answer(request.scheme, host)
        if answer is None:
            if request.scheme == "https" and host in self.national_hosts:
                return self.autodiscover.national_endpoint(host)
            return text_reply(404, "Not Found")
        return self.autodiscover.answer(answer, request, endpoint)

    def _autodiscover_answer(self, scheme: str, host: str) -> tuple[str, AutodiscoverAnswer | None]:
        answers = self.config.autodiscover
        if scheme == "http":
            return "http", answers.get("http") if host == self.config.autodiscover_host else None
        if host == self.config.domain and "root" in answers:
            return "root", answers["root"]
        if host == self.config.autodiscover_host and "autodiscover" in answers:
            return "autodiscover", answers["autodiscover"]
        if host in answers:
            return host, answers[host]
        if host in self.loop_hosts:
            return host, self.loop_hosts[host]
        return host, None

    def _autoconfig(self, name: str, request: HttpRequest) -> HttpReply:
        cfg = self.config.autoconfig
        if not cfg.enabled:
            return text_reply(404, "Not Found")
        return autoconfig.answer(cfg.endpoints[name], cfg, self.config.domain, request, self.port_of, name)
