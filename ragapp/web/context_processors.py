"""Template context shared by every page."""

from django.http import HttpRequest


def csp_nonce(request: HttpRequest) -> dict[str, object]:
    """Expose the CSP nonce under the name django-htmx's script tag reads.

    The nonce object is lazy: the header carries a nonce only on pages that use it.
    """
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


def roles(request: HttpRequest) -> dict[str, object]:
    """Whether the navigation shows the admins' pages (Manage, Usage)."""
    from ragapp.accounts.roles import is_admin

    return {"is_admin": is_admin(getattr(request, "user", None))}
