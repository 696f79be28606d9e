"""API keys in the Django admin: issue (shown once), see, revoke; never the secret."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ragapp.api.keys import apikey_create
from ragapp.api.models import ApiKey, ApiRequest


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "read_only",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "last_used_at", "created_by", "created_at"]
    fields = [
        "user",
        "name",
        "collections",
        "read_only",
        "expires_at",
        "requests_per_minute",
        "monthly_token_budget",
        "revoked_at",
        *readonly_fields,
    ]
    autocomplete_fields = ["user"]
    filter_horizontal = ["collections"]
    actions = ["revoke"]

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = apikey_create(
            user=obj.user,
            name=obj.name,
            read_only=obj.read_only,
            expires_at=obj.expires_at,
            created_by=request.user,
            requests_per_minute=obj.requests_per_minute,
            monthly_token_budget=obj.monthly_token_budget,
        )
        obj.pk = issued.key.pk
        obj.refresh_from_db()
        messages.warning(
            request,
            _("The new key, shown only this once: %(secret)s")
            % {"secret": issued.secret},
        )

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list, change: bool
    ) -> None:
        form.instance = ApiKey.objects.get(pk=form.instance.pk)
        super().save_related(request, form, formsets, change)

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, _("%(n)d keys revoked.") % {"n": count})


@admin.register(ApiRequest)
class ApiRequestAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "method",
        "route",
        "status",
        "key",
        "user",
        "tokens",
        "latency_ms",
    ]
    list_filter = ["status", "method"]
    search_fields = ["request_id", "route", "user__username"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ApiRequest | None = None
    ) -> bool:
        return False
