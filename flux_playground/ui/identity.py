"""Whose history is this? The signed-in Hugging Face user, else an anonymous id kept in the browser.

The owner string is derived on the server for every request, from the OAuth session cookie or the
browser's stored id; nothing the page sends (an item id, an index) can name another person. The
anonymous id is a bearer secret: 144 random bits, only ever compared after hashing by History.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

__all__ = [
    "ANON_ID",
    "BROWSER_STORAGE_KEY",
    "INFERENCE_SCOPE",
    "Identity",
    "hf_token",
    "new_browser_id",
    "resolve_identity",
    "spend_person",
]

#: The OAuth scope that lets a token call Inference Providers (`hf_oauth_scopes: [inference-api]`).
INFERENCE_SCOPE = "inference-api"

#: What secrets.token_urlsafe(24) produces: exactly 32 URL-safe characters. Anything else a browser
#: sends (tampered storage, an old format, an attempt to inject text into a path) is replaced.
ANON_ID = re.compile(r"[A-Za-z0-9_-]{32}")
#: Fixed so the id survives server restarts and replicas; gr.BrowserState would otherwise pick a
#: random key per start and every visitor would lose their history on each deploy.
BROWSER_STORAGE_KEY = "flux-playground-owner"
#: gr.BrowserState sends its "secret" to every browser in /config, so it cannot protect anything;
#: it only obfuscates localStorage. It is fixed for the same reason as the storage key.
BROWSER_SECRET = "flux-playground-browser-state-v1"


@dataclass(frozen=True)
class Identity:
    owner: str
    #: The browser id to keep (a fresh one when the stored one was absent or invalid).
    browser_id: str
    #: Shown in the page: "@username" or "this browser".
    display: str


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)


def valid_browser_id(value: object) -> str | None:
    return value if isinstance(value, str) and ANON_ID.fullmatch(value) else None


def resolve_identity(profile: Any | None, browser_id: object) -> Identity:
    """The owner for this request: "hf:<username>" when signed in, else "anon:<browser id>".

    `profile` is a gr.OAuthProfile (a dict subclass) or None; it comes from the session cookie,
    which the browser cannot forge.
    """
    kept = valid_browser_id(browser_id) or new_browser_id()
    username = _username(profile)
    if username:
        return Identity(owner=f"hf:{username}", browser_id=kept, display=f"@{username}")
    return Identity(owner=f"anon:{kept}", browser_id=kept, display="this browser")


def _username(profile: Any | None) -> str | None:
    if profile is None:
        return None
    name = getattr(profile, "username", None) or (
        profile.get("preferred_username") if isinstance(profile, dict) else None
    )
    return name if isinstance(name, str) and name.strip() else None


def spend_person(profile: Any | None, request: Any | None) -> str:
    """Who a run is counted against for rates, duplicate clicks and the per-person spend cap.

    The signed-in Hugging Face user, else the client's address as the gate decided it (ui/gate.py:
    X-Forwarded-For only from trusted proxies). Never the browser id: the browser chooses that one,
    so a fresh id per request would escape every limit.
    """
    username = _username(profile)
    if username:
        return f"hf:{username}"
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"ip:{host}" if isinstance(host, str) and host else "ip:unknown"


def hf_token(token: Any | None) -> SecretStr | None:
    """The person's own Hugging Face token for this one request (a gr.OAuthToken), wrapped at once so it
    never shows in a repr, a log line or a traceback; never stored anywhere.

    From the sign-in session only if it carries the Inference Providers permission (a Space that did
    not ask for it holds tokens the router refuses); a token an API caller hands over itself
    (gradio_client's `oauth_token=`, which Gradio passes with an empty scope) is theirs to use.
    """
    text = getattr(token, "token", None)
    if not isinstance(text, str) or not text.strip():
        return None
    scope = getattr(token, "scope", "")
    if isinstance(scope, str) and scope.strip() and INFERENCE_SCOPE not in scope.split():
        return None
    return SecretStr(text)
