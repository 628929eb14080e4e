"""The worker's secrets (the functions' bearer token, the Standard Webhooks signing secret): from the
environment, or by name from Supabase Vault (`vault.decrypted_secrets`), read at start and again on
SIGHUP. Never logged: errors and log lines name a secret, never its value.

| secret          | from the environment | by its name in Vault         |
| --------------- | -------------------- | ---------------------------- |
| bearer token    | WF_FUNCTIONS_TOKEN   | WF_FUNCTIONS_TOKEN_SECRET    |
| signing secret  | WF_SIGNING_SECRET    | WF_SIGNING_SECRET_SECRET     |
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from wf import queries

TOKEN_ENV = "WF_FUNCTIONS_TOKEN"
TOKEN_VAULT_ENV = "WF_FUNCTIONS_TOKEN_SECRET"
SIGNING_ENV = "WF_SIGNING_SECRET"
SIGNING_VAULT_ENV = "WF_SIGNING_SECRET_SECRET"

# SQLSTATE classes that mean "this login cannot read Vault here" (no schema or view, no privilege):
# a set-up problem to name, not an outage to retry
_SETUP_CLASSES = ("42", "3F")


class SecretError(Exception):
    """A secret cannot be had: one line naming it (never its value)."""


@dataclass(frozen=True)
class Secrets:
    token: str | None = None
    signing_secret: str | None = None

    def __repr__(self) -> str:  # a stray repr in a log line or traceback shows no value
        def shown(value: str | None) -> str:
            return "set" if value else "unset"

        return f"Secrets(token={shown(self.token)}, signing_secret={shown(self.signing_secret)})"


@dataclass(frozen=True)
class SecretSources:
    """Where each secret comes from: a value from the environment, or a name in Vault (never both)."""

    token: str | None = None
    token_vault: str | None = None
    signing_secret: str | None = None
    signing_vault: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SecretSources:
        """Raises SecretError when a secret is given both ways (a usage error)."""
        for value_var, name_var in ((TOKEN_ENV, TOKEN_VAULT_ENV), (SIGNING_ENV, SIGNING_VAULT_ENV)):
            if environ.get(value_var) and environ.get(name_var):
                raise SecretError(f"set {value_var} or {name_var} (its name in Supabase Vault), not both")
        return cls(environ.get(TOKEN_ENV) or None, environ.get(TOKEN_VAULT_ENV) or None,
                   environ.get(SIGNING_ENV) or None, environ.get(SIGNING_VAULT_ENV) or None)

    @property
    def vault_names(self) -> list[str]:
        return [name for name in (self.token_vault, self.signing_vault) if name]

    def from_environment(self) -> Secrets:
        """The secrets when none comes from Vault (checked like Vault's)."""
        check_signing_secret(self.signing_secret, SIGNING_ENV)
        return Secrets(self.token, self.signing_secret)


def check_signing_secret(value: str | None, source: str) -> None:
    """A signing secret is a Standard Webhooks secret (`whsec_` + base64): refused up front, naming
    where it came from, rather than at the first call (and without the library's message)."""
    if value is None:
        return
    try:
        Webhook(value)
    except (binascii.Error, ValueError, WebhookVerificationError, EmptyWebhookSecretError) as exc:
        raise SecretError(f"{source}: not a Standard Webhooks signing secret (whsec_ followed by base64)") from exc


async def read(conn: asyncpg.Connection | asyncpg.Pool, sources: SecretSources) -> Secrets:
    """The current secrets: those named in Vault read now (each must exist and be non-empty), the
    others from the environment. Raises SecretError naming the secret that is missing or empty."""
    names = sources.vault_names
    if not names:
        return sources.from_environment()
    try:
        rows = await conn.fetch(queries.VAULT_SECRETS, names)
    except asyncpg.PostgresError as exc:
        if (exc.sqlstate or "")[:2] not in _SETUP_CLASSES:
            raise
        raise SecretError(f"cannot read Vault secret(s) {', '.join(names)} from vault.decrypted_secrets: "
                          f"{str(exc).splitlines()[0]}") from exc
    found: dict[str, list[str | None]] = {}
    for row in rows:
        found.setdefault(row["name"], []).append(row["decrypted_secret"])

    def one(name: str | None, variable: str) -> str | None:
        if name is None:
            return None
        values = found.get(name)
        if not values:
            raise SecretError(f"Vault secret {name} ({variable}) does not exist in vault.decrypted_secrets")
        if len(values) > 1:
            raise SecretError(f"Vault secret {name} ({variable}) is there {len(values)} times: names must be unique")
        if not values[0] or not values[0].strip():
            raise SecretError(f"Vault secret {name} ({variable}) is empty")
        return values[0]

    token = one(sources.token_vault, TOKEN_VAULT_ENV) if sources.token_vault else sources.token
    signing = one(sources.signing_vault, SIGNING_VAULT_ENV) if sources.signing_vault else sources.signing_secret
    check_signing_secret(signing, f"Vault secret {sources.signing_vault}" if sources.signing_vault else SIGNING_ENV)
    return Secrets(token, signing)
