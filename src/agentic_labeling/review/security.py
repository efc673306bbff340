"""Cross-site request refusal for the review app's mutating routes.

A mutating request must (1) carry the page's token in the `X-Review-Token` header, which a
cross-site form cannot set and a cross-site `fetch` cannot send without a CORS preflight the
app never grants, and (2) when the browser says where it comes from (`Origin`,
`Sec-Fetch-Site`), come from this very origin. Either failing is 403.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

__all__ = ["TOKEN_HEADER", "new_token", "refusal"]

TOKEN_HEADER = "x-review-token"
_SAFE_FETCH_SITES = frozenset({"same-origin", "none"})


def new_token() -> str:
    return secrets.token_hex(16)


def refusal(request: Request, token: str) -> str | None:
    """Why a mutating request is refused as cross-site; None when it is not."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _SAFE_FETCH_SITES:
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            return "cross-site request refused (Origin is not this page's)"
    sent = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(sent.encode(), token.encode()):
        return f"missing or wrong {TOKEN_HEADER} header: reload the page"
    return None
