"""Password hashes for `server.auth`: scrypt (hashlib, RFC 7914) in the PHC string format.

A hash reads `$scrypt$ln=17,r=8,p=1$<salt>$<hash>`: `ln` is log2 of scrypt's cost N, salt and hash are base64
without padding (the format passlib and other PHC tools write for scrypt). `cyberdesk-runner hash-password` makes
one; the config holds only the hash, never the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

__all__ = ["PasswordHashError", "hash_password", "parse_password_hash", "verify_password"]

#: OWASP's scrypt minimum: N=2^17, r=8, p=1 (128 MiB per check; the server caches good credentials).
DEFAULT_LOG_N = 17
_R, _P, _SALT_BYTES, _KEY_BYTES = 8, 1, 16, 32
_FORMAT = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")
EXAMPLE = "$scrypt$ln=17,r=8,p=1$<salt>$<hash> (make one with `cyberdesk-runner hash-password`)"


class PasswordHashError(ValueError):
    """Not a password hash this module can check (never quotes the value)."""


def hash_password(password: str, *, log_n: int = DEFAULT_LOG_N) -> str:
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(password, salt, log_n, _R, _P)
    return f"$scrypt$ln={log_n},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def parse_password_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """(log_n, r, p, salt, key) of a hash; PasswordHashError when it is not one."""
    match = _FORMAT.match(text.strip())
    if match is None:
        raise PasswordHashError(f"expected a scrypt password hash like {EXAMPLE}")
    log_n, r, p = (int(match[i]) for i in (1, 2, 3))
    if not (1 <= log_n <= 24 and 1 <= r <= 64 and 1 <= p <= 16):
        raise PasswordHashError(
            f"scrypt parameters out of range (1 <= ln <= 24, r <= 64, p <= 16); {EXAMPLE}"
        )
    return log_n, r, p, _unb64(match[4]), _unb64(match[5])


def verify_password(password: str, password_hash: str) -> bool:
    log_n, r, p, salt, key = parse_password_hash(password_hash)
    return hmac.compare_digest(_scrypt(password, salt, log_n, r, p, len(key)), key)


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, length: int = _KEY_BYTES) -> bytes:
    # scrypt needs 128 * N * r bytes; allow that plus room.
    memory = 128 * (2**log_n) * r * p + (1 << 20)
    return hashlib.scrypt(password.encode(), salt=salt, n=2**log_n, r=r, p=p, maxmem=memory, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
