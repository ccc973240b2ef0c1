"""The console's defences against other web pages: one ASGI middleware in front of every route.

A browser on the operator's machine is a way in for any page it opens, so the console does
not trust the network position (loopback) or an ambient cookie alone:

- **Host allowlist** (DNS rebinding): a request is served only if its ``Host`` names this
  console: ``localhost``, ``127.0.0.1``, ``[::1]``, the ``--host`` it listens on (when that is
  a specific name or address) and each ``--allow-host``. Any other ``Host`` gets 421 and a
  one-line reason, before any page runs.
- **Cross-site writes** (CSRF): every request that is not GET/HEAD/OPTIONS must

  1. come from the console's own origin: its ``Origin`` (else its ``Referer``), when sent,
     must be ``scheme://host:port`` of the request itself (browsers send ``Origin`` on every
     POST; a script that sends neither header is judged by the token alone), and
  2. carry the CSRF token of its session, as the form field ``csrf_token`` (an
     ``application/x-www-form-urlencoded`` body of at most 64 KiB) or the header
     ``X-CSRF-Token``. The token is an HMAC, under a secret drawn when the app starts, of a
     random nonce kept in the ``sutram_csrf`` cookie (HttpOnly, SameSite=Strict) and of the
     access token the request presents; it is compared in constant time. A page on another
     port of the same host can plant a cookie (cookies ignore ports) but cannot compute the
     HMAC, nor read the console's pages to copy one.

  A refused request reaches no route, so it changes nothing.
- **Framing**: every response forbids being framed (``frame-ancestors 'none'``), so another
  page cannot overlay the console's buttons.

>>> host_name("Rebind.Example.:8787"), host_name("[::1]:8787"), host_name("bad host")
('rebind.example', '::1', None)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sutram_core.errors import ConfigurationError

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "ConsoleGuard", "CsrfTokens", "allowed_host_names", "host_name"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_COOKIE = "sutram_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 64 * 1024
_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*")
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECURITY_HEADERS = (
    ("content-security-policy", "frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def _name(value: str) -> str | None:
    """A host name or address in canonical form (lower case, no brackets or final dot), or None."""
    value = value.strip().lower()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    value = value.removesuffix(".")
    return value if _NAME.fullmatch(value) else None


def host_name(header: str) -> str | None:
    """The name a ``Host`` header asks for, without its port (None if it is malformed)."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or (header[end + 1:] and not re.fullmatch(r":\d{1,5}", header[end + 1:])):
            return None
        return _name(header[: end + 1])
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return _name(name)


def _host_port(netloc: str, scheme: str) -> tuple[str | None, int | None]:
    """``(name, port)`` of a ``host[:port]``, the scheme's default port when none is given."""
    after_literal = netloc.strip().rsplit("]", 1)[-1]  # an IPv6 literal holds colons of its own
    _, colon, port = after_literal.rpartition(":")
    return host_name(netloc), int(port) if colon and port.isdigit() else _DEFAULT_PORTS.get(scheme)


def allowed_host_names(host: str | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` names a console answers: loopback names, ``host`` (the address it listens
    on) unless it means "every interface", and each of ``extra``; raises ConfigurationError
    for a name that is not a host name or address."""
    names = set(LOOPBACK_NAMES)
    if host and host.strip() not in ("", "0.0.0.0", "::", "[::]", "*"):
        extra = [host, *extra]
    for raw in extra:
        name = _name(raw)
        if name is None:
            raise ConfigurationError(
                f"--allow-host {raw!r} is not a host name or address: give the name browsers use, "
                "without scheme or port (for example console.example.com or 10.0.0.5)"
            )
        names.add(name)
    return frozenset(names)


class CsrfTokens:
    """Issue and check CSRF tokens: ``HMAC(secret, nonce, access token)``. The nonce lives in
    a cookie, so the token is bound to that browser session and to who it signed in as."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    def token(self, nonce: str, identity: str) -> str:
        who = hashlib.sha256(identity.encode()).digest()
        return hmac.new(self._secret, b"sutram-console-csrf\0" + nonce.encode() + b"\0" + who, "sha256").hexdigest()

    def check(self, nonce: str | None, identity: str, presented: str | None) -> bool:
        if not nonce or not presented:
            return False
        return hmac.compare_digest(self.token(nonce, identity).encode(), presented.encode())


def _origin_problem(request: Request) -> str | None:
    """Why this unsafe request does not come from the console's own origin (None: it does,
    or it names no origin at all)."""
    scheme = request.url.scheme
    own_host, own_port = _host_port(request.headers.get("host", ""), scheme)
    own = f"{scheme}://{request.headers.get('host', '')}"
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        parts = urlsplit(value) if value != "null" else None
        if parts is None or not parts.netloc:
            return f"refused: the {header.title()} of this request is {value!r}, not the console ({own})"
        their_host, their_port = _host_port(parts.netloc.rpartition("@")[2], parts.scheme)
        if (parts.scheme, their_host, their_port) != (scheme, own_host, own_port):
            return (f"refused: this request was sent by a page of {parts.scheme}://{parts.netloc}, "
                    f"not by the console ({own})")
        return None
    return None


class ConsoleGuard:
    """ASGI middleware: the Host allowlist, the CSRF checks and the framing headers (see the
    module docstring). ``identity(request)`` is the access token a request presents ('' for
    none); ``refuse(request, status, reason)`` renders a refusal page."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], tokens: CsrfTokens,
                 identity: Callable[[Request], str], refuse: Callable[[Request, int, str], Response]) -> None:
        self.app = app
        self.hosts = hosts
        self.tokens = tokens
        self.identity = identity
        self.refuse = refuse

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        asked = request.headers.get("host", "")
        if host_name(asked) not in self.hosts:
            shown = sorted(f"[{h}]" if ":" in h else h for h in self.hosts)
            reason = (f"421 Misdirected Request: this console does not answer to Host {asked[:100]!r} "
                      f"(it answers {', '.join(shown)}; add a name with sutram serve --allow-host NAME)\n")
            await PlainTextResponse(reason, status_code=421)(scope, receive, send)
            return
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if nonce is None or not _NONCE.fullmatch(nonce):
            nonce = fresh = self.tokens.new_nonce()
        identity = self.identity(request)
        request.state.csrf_token = self.tokens.token(nonce, identity)

        async def send_hardened(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers.setdefault(name, value)
                if fresh is not None:
                    headers.append("set-cookie", f"{CSRF_COOKIE}={fresh}; HttpOnly; Path=/; SameSite=Strict")
            await send(message)

        if request.method in SAFE_METHODS:
            await self.app(scope, receive, send_hardened)
            return
        problem = _origin_problem(request)
        body = b""
        if problem is None:
            body, problem = await self._read_body(request, receive)
        if problem is None:
            presented = request.headers.get(CSRF_HEADER) or self._form_token(request, body)
            if not self.tokens.check(None if fresh else nonce, identity, presented):
                problem = ("refused: this form carries no valid CSRF token for this session "
                           "(open the page again from the console and resubmit)")
        if problem is not None:
            await self.refuse(request, 403, problem)(scope, receive, send_hardened)
            return
        await self.app(scope, _replay(body, receive), send_hardened)

    @staticmethod
    async def _read_body(request: Request, receive: Any) -> tuple[bytes, str | None]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            return b"", f"refused: a console form is at most {MAX_FORM_BYTES} bytes"
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", "refused: the client went away"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return b"", f"refused: a console form is at most {MAX_FORM_BYTES} bytes"
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    @staticmethod
    def _form_token(request: Request, body: bytes) -> str | None:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return None
        try:
            values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=100).get(CSRF_FIELD)
        except ValueError:  # more fields than any console form has
            return None
        return values[0] if values else None


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` that hands the app the body the guard already read, then defers to the
    client's (for the disconnect)."""
    pending = True

    async def replayed() -> Any:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
