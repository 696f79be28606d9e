"""Admins see every question, answer, citation and what it cost; nobody edits them."""

from django.contrib import admin
from django.http import HttpRequest

from ragapp.answers.models import Citation, Message, Thread
from ragapp.documents.admin import ReadOnlyAdmin


class CitationInline(admin.TabularInline):
    model = Citation
    fields = ("marker", "document_title", "page_start", "page_end", "quote")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(
        self, request: HttpRequest, obj: Message | None = None
    ) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "question",
        "status",
        "answerer",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
    )
    list_filter = ("status", "answerer", "model")
    search_fields = ("question", "answer", "thread__user__username")
    list_select_related = ("thread__user",)
    date_hierarchy = "created_at"
    inlines = [CitationInline]
    exclude = ("answer_checks",)

    @admin.display(ordering="thread__user__username")
    def user(self, obj: Message) -> str:
        return obj.thread.user.get_username()


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = ("title", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username")
    list_select_related = ("user",)
