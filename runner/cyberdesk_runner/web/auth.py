"""Who may read the daemon's HTTP server: `server.auth` checked on every request but the open ones.

A bearer token is sent as `Authorization: Bearer <token>`; browsers, which cannot send one, give it as the password
of HTTP Basic (any user name). A user with a password hash signs in with HTTP Basic. No cookie, no session, no
token in a URL: nothing a page or a link could leak. Answers to refused requests say only what is needed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from cyberdesk_runner.config import ServerAuth
from cyberdesk_runner.passwords import verify_password

__all__ = ["AuthGate"]

#: Good credentials remembered (as a SHA-256 of the header), so scrypt runs once per browser, not per poll.
_REMEMBERED = 64
_CHALLENGE = b'Basic realm="cyberdesk-runner", charset="UTF-8"'


class AuthGate:
    """ASGI middleware: requests to `open_paths` pass; every other one needs the configured credentials."""

    def __init__(self, app: ASGIApp, auth: ServerAuth, open_paths: frozenset[str]) -> None:
        self.app = app
        self.open_paths = open_paths
        self._token = auth.token.get_secret_value().encode() if auth.token is not None else None
        self._user = auth.user
        self._hash = auth.password_hash.get_secret_value() if auth.password_hash is not None else None
        self._good: OrderedDict[bytes, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        if await self._allows(header):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", _CHALLENGE),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"401: sign in to see this page\n"})

    async def _allows(self, header: bytes) -> bool:
        if not header:
            return False
        digest = hashlib.sha256(header).digest()
        if digest in self._good:
            self._good.move_to_end(digest)
            return True
        # scrypt takes a good fraction of a second: off the event loop, which serves webhooks meanwhile.
        ok = await asyncio.to_thread(self._check, header)
        if ok:
            self._good[digest] = None
            if len(self._good) > _REMEMBERED:
                self._good.popitem(last=False)
        return ok

    def _check(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            return self._token is not None and hmac.compare_digest(value.strip(), self._token)
        if scheme != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        if not sep:
            return False
        if self._token is not None:
            return hmac.compare_digest(password, self._token)
        assert self._user is not None and self._hash is not None
        user_ok = hmac.compare_digest(user, self._user.encode())
        try:
            # Always run the hash (even for a wrong user), so timing does not tell which part was wrong.
            password_ok = verify_password(password.decode("utf-8", "replace"), self._hash)
        except ValueError:
            return False
        return user_ok and password_ok
