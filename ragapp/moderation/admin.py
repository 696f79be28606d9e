"""Admins read every moderation verdict; nobody adds, edits or deletes one."""

from __future__ import annotations

from django.contrib import admin

from ragapp.documents.admin import ReadOnlyAdmin
from ragapp.moderation.models import ModerationCheck


@admin.register(ModerationCheck)
class ModerationCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "source",
        "status",
        "flagged",
        "flagged_categories",
        "user",
        "provider",
        "latency_ms",
        "excerpt",
    )
    list_filter = ("flagged", "source", "status", "provider")
    search_fields = ("text_excerpt",)
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "user",
        "source",
        "status",
        "flagged",
        "categories",
        "category_scores",
        "provider",
        "model",
        "latency_ms",
        "error",
        "text_sha256",
        "text_excerpt",
    )

    @admin.display(description="excerpt")
    def excerpt(self, obj: ModerationCheck) -> str:
        text = " ".join(obj.text_excerpt.split())
        return text if len(text) <= 80 else f"{text[:79]}…"

    @admin.display(description="categories")
    def flagged_categories(self, obj: ModerationCheck) -> str:
        return ", ".join(obj.flagged_categories) or "—"
