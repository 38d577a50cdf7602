"""Tokens, users and organisations of the hub.

* ``auth/tokens.json`` maps sha256(token) to ``{user, scope: read|write, name, created}``;
  the token itself is never stored.
* ``auth/users.json`` maps a user to ``{"orgs": [...]}``. Organisation membership is kept
  simple: ``dismai hub token create --user alice --org dismai`` makes alice a member of
  ``dismai`` (a write token of a member may write to the organisation's repos).
* ``auth/secret`` is a random key that signs short-lived Xet and LFS upload grants, so
  they stay valid across a server restart and need no server-side state.

Rules: anonymous users read public repos; private repos answer 404 to anyone who is not
the owner or a member of the owning organisation (listings too); writes need a write
token of the owner or of a member of the organisation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dismai_data.hub.storage import HubError, atomic_write

_guard = threading.Lock()


@dataclass
class User:
    name: str
    scope: str  # read | write
    orgs: list[str] = field(default_factory=list)
    token_name: str = ""

    def may_read(self, ns: str) -> bool:
        return ns == self.name or ns in self.orgs

    def may_write(self, ns: str) -> bool:
        return self.scope == "write" and self.may_read(ns)


class Grants:
    """Signed short-lived grants (Xet CAS access tokens, LFS upload URLs): ``{purpose}_{body}.{hmac}``,
    signed with ``auth/secret``, so no server-side state is needed."""

    def __init__(self, secret: bytes):
        self.secret = secret

    def grant(self, user: User, purpose: str, ttl: int = 3600, extra: str = "") -> tuple[str, int]:
        exp = int(time.time()) + ttl
        body = base64.urlsafe_b64encode(json.dumps(
            {"u": user.name, "o": user.orgs, "s": user.scope, "p": purpose, "e": exp, "x": extra}).encode()).decode()
        sig = hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{purpose}_{body}.{sig}", exp

    def open_grant(self, token: str, purpose: str) -> tuple[User, str] | None:
        """(user, extra) of a valid, unexpired grant for ``purpose``; None otherwise."""
        prefix = purpose + "_"
        if not token.startswith(prefix) or "." not in token:
            return None
        body, _, sig = token[len(prefix):].rpartition(".")
        want = hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
        except Exception:
            return None
        if data.get("p") != purpose or data.get("e", 0) < time.time():
            return None
        return User(data["u"], data["s"], list(data.get("o", []))), data.get("x", "")

    def check_grant(self, token: str, purpose: str, extra: str | None = None) -> User | None:
        opened = self.open_grant(token, purpose)
        if opened is None or (extra is not None and opened[1] != extra):
            return None
        return opened[0]


class Auth:
    """The token store (``tokens.json``, ``users.json``), the ``Authorization`` header check,
    and the signed grants (:class:`Grants`)."""

    def __init__(self, root: str | os.PathLike):
        self.dir = Path(root) / "auth"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(root) / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        secret = self.dir / "secret"
        with _guard:
            if not secret.exists():
                atomic_write(secret, secrets.token_bytes(32), self.tmp)
        self.secret = secret.read_bytes()
        self.grants = Grants(self.secret)
        self._cache: tuple[float, dict, dict] | None = None

    def _load(self) -> tuple[dict, dict]:
        tok, usr = self.dir / "tokens.json", self.dir / "users.json"
        mtime = max((p.stat().st_mtime_ns for p in (tok, usr) if p.exists()), default=0)
        if self._cache and self._cache[0] == mtime:
            return self._cache[1], self._cache[2]
        tokens = json.loads(tok.read_bytes()) if tok.exists() else {}
        users = json.loads(usr.read_bytes()) if usr.exists() else {}
        self._cache = (mtime, tokens, users)
        return tokens, users

    def create_token(self, user: str, scope: str, orgs: list[str] | None = None, name: str = "") -> str:
        if scope not in ("read", "write"):
            raise ValueError("scope must be read or write")
        if not user or "/" in user:
            raise ValueError(f"invalid user name {user!r}")
        token = "dsm_" + secrets.token_urlsafe(32)
        with _guard:
            self._cache = None
            tokens, users = self._load()
            tokens = dict(tokens)
            users = dict(users)
            tokens[hashlib.sha256(token.encode()).hexdigest()] = {
                "user": user, "scope": scope, "name": name or f"{user}-{scope}", "created": int(time.time())}
            u = users.setdefault(user, {"orgs": []})
            for org in orgs or []:
                if org not in u["orgs"]:
                    u["orgs"].append(org)
            atomic_write(self.dir / "users.json", json.dumps(users, indent=1).encode(), self.tmp)
            atomic_write(self.dir / "tokens.json", json.dumps(tokens, indent=1).encode(), self.tmp)
            self._cache = None
        return token

    def user_for_token(self, token: str) -> User | None:
        tokens, users = self._load()
        rec = tokens.get(hashlib.sha256(token.encode()).hexdigest())
        if rec is None:
            return None
        return User(rec["user"], rec["scope"], list(users.get(rec["user"], {}).get("orgs", [])), rec.get("name", ""))

    def from_header(self, authorization: str | None) -> User | None:
        """The user of an ``Authorization: Bearer`` header; None when absent; 401 when invalid."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HubError(401, "InvalidCredentials", "authorization header must be 'Bearer <token>'")
        token = token.strip()
        if token.startswith("xet_"):
            user = self.check_grant(token, "xet")
            if user is not None:
                return user
        user = self.user_for_token(token)
        if user is None:
            raise HubError(401, "InvalidCredentials", "invalid or unknown token")
        return user

    def grant(self, user: User, purpose: str, ttl: int = 3600, extra: str = "") -> tuple[str, int]:
        return self.grants.grant(user, purpose, ttl, extra)

    def check_grant(self, token: str, purpose: str, extra: str | None = None) -> User | None:
        return self.grants.check_grant(token, purpose, extra)
