"""Each signed-in user's own API keys: list, create, revoke.

A new key's secret is in the answer to the POST that made it and nowhere
else: not in a redirect's URL, not in a flashed message (messages may
travel in a cookie), not in the database (only its digest) and not in any
later page. That answer is marked no-store so no cache keeps it either.
The pages are plain forms; htmx only swaps the new key in without a reload.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from ragapp.api.keys import IssuedKey, apikey_create, apikey_revoke
from ragapp.api.limits import key_budget, spent_this_month
from ragapp.api.models import ApiKey
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_list_readable
from ragapp.web.manage_views import HtmxHttpRequest

EXPIRY_CHOICES = [
    ("", gettext_lazy("Never")),
    ("30", gettext_lazy("In 30 days")),
    ("90", gettext_lazy("In 90 days")),
    ("365", gettext_lazy("In a year (365 days)")),
]


class ApiKeyCreateForm(forms.Form):
    """A new key's name, scope, write access and lifetime."""

    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("Say where it is used, e.g. “laptop script”."),
    )
    collections = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Limit to these collections"),
        queryset=Collection.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "Tick none for every collection you may read, now and later."
        ),
    )
    read_only = forms.BooleanField(
        label=gettext_lazy("Read-only"),
        required=False,
        initial=True,
        help_text=gettext_lazy("May search and ask, but not upload or change."),
    )
    expires_in = forms.ChoiceField(
        label=gettext_lazy("Expires"), choices=EXPIRY_CHOICES, required=False
    )

    def __init__(self, *args: object, user: AbstractBaseUser, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Only what the user may read is offered, and only that validates: a
        # forged id is refused rather than dropped, since dropping the only
        # ticked collection would silently widen the key to all of them.
        self.fields["collections"].queryset = collection_list_readable(
            user=user
        ).order_by("name")

    def expires_at(self) -> dt.datetime | None:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + dt.timedelta(days=int(days)) if days else None


@dataclass(frozen=True)
class KeyRow:
    """One key as the list shows it."""

    key: ApiKey
    state: str
    collections: list[Collection]
    spent: int
    budget: int


def _state(key: ApiKey, now: dt.datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "usable"


def _own_keys(user: AbstractBaseUser) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).prefetch_related("collections")


def _rows(user: AbstractBaseUser) -> list[KeyRow]:
    now = timezone.now()
    rows = []
    for key in _own_keys(user):
        by_key, _by_user = spent_this_month(key)
        rows.append(
            KeyRow(
                key=key,
                state=_state(key, now),
                collections=sorted(key.collections.all(), key=lambda c: c.name),
                spent=by_key,
                budget=key_budget(key),
            )
        )
    return rows


def _key_or_404(request: HtmxHttpRequest, key_id: int) -> ApiKey:
    """The signed-in user's key; someone else's is as missing as no key."""
    key = _own_keys(request.user).filter(pk=key_id).first()
    if key is None:
        raise Http404
    return key


def _page(
    request: HtmxHttpRequest,
    form: ApiKeyCreateForm,
    issued: IssuedKey | None = None,
) -> HttpResponse:
    readable = list(form.fields["collections"].queryset)
    context = {
        "form": form,
        "rows": _rows(request.user),
        "issued": issued,
        "base_url": request.build_absolute_uri(get_script_prefix() + "v1"),
        "example_model": (
            f"collection:{readable[0].slug}" if readable else "ragapp-extractive"
        ),
    }
    template = "web/keys.html#keys-body" if request.htmx else "web/keys.html"
    response = render(request, template, context)
    if request.method == "POST":
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def keys_page(request: HtmxHttpRequest) -> HttpResponse:
    """List the user's keys; make one and show its secret in this answer only."""
    if request.method != "POST":
        return _page(request, ApiKeyCreateForm(user=request.user))
    form = ApiKeyCreateForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form)
    data = form.cleaned_data
    issued = apikey_create(
        user=request.user,
        name=data["name"],
        collections=list(data["collections"]),
        read_only=data["read_only"],
        expires_at=form.expires_at(),
    )
    return _page(request, ApiKeyCreateForm(user=request.user), issued)


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    """Ask first; then revoke the key, which fails on its very next request."""
    key = _key_or_404(request, key_id)
    if request.method == "POST":
        apikey_revoke(key=key)
        flash.success(request, _("API key “%(name)s” revoked.") % {"name": key.name})
        return HttpResponseRedirect(reverse("web:keys") + f"#key-{key.pk}")
    return render(request, "web/key_revoke.html", {"key": key})
