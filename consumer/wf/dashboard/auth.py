"""Who may act: WF_DASHBOARD_TOKEN, a session cookie proving it was typed once, a CSRF token per session.

Without a token the dashboard is read-only: no action is shown and every POST is refused. With one, the
login form sets an HttpOnly, SameSite=Strict cookie `<nonce>.<mac>`; every action form carries
`csrf = HMAC(token, "csrf:" + nonce)`, and a POST whose Origin is another site is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

COOKIE = "wf_session"
MIN_TOKEN_CHARS = 16


class Refused(Exception):
    """An action that may not run: the message says why (shown to the user, HTTP 403)."""


class Auth:
    def __init__(self, token: str | None) -> None:
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"WF_DASHBOARD_TOKEN: at least {MIN_TOKEN_CHARS} characters "
                             "(try: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        self.enabled = token is not None
        self._token = token or ""
        self._key = hashlib.sha256(b"wf-dashboard\0" + self._token.encode()).digest()

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, typed: str) -> bool:
        return self.enabled and hmac.compare_digest(typed.encode(), self._token.encode())

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac('session', nonce)}"

    def session(self, request: web.Request) -> str | None:
        """The session's nonce when the request carries a valid session cookie."""
        if not self.enabled:
            return None
        nonce, _, mac = request.cookies.get(COOKIE, "").partition(".")
        if nonce and hmac.compare_digest(mac, self._mac("session", nonce)):
            return nonce
        return None

    def csrf(self, request: web.Request) -> str | None:
        nonce = self.session(request)
        return self._mac("csrf", nonce) if nonce else None

    def check_action(self, request: web.Request, form: dict[str, str]) -> None:
        """Raise Refused unless this POST may act: token configured, signed in, same origin, CSRF token."""
        if not self.enabled:
            raise Refused("this dashboard is read-only: start it with WF_DASHBOARD_TOKEN set to act")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise Refused("refused: the request came from another site")
        expected = self.csrf(request)
        if expected is None:
            raise Refused("sign in first (the dashboard token)")
        if not hmac.compare_digest(form.get("csrf", ""), expected):
            raise Refused("refused: the form's CSRF token is missing or wrong (reload the page)")
