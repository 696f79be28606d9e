"""Superusers see every question, answer, citation and what it cost; nobody edits them.

The Admins group reads conversations only through the product's audited
view; a superuser opening one here is logged the same way.
"""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from ragapp.answers.models import (
    Citation,
    ConversationRead,
    Feedback,
    Message,
    Thread,
)
from ragapp.answers.services import conversation_read_record
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


class AuditedReadAdmin(ReadOnlyAdmin):
    """Opening one of these rows reads someone's conversation: log it first."""

    def thread_of(self, object_id: str) -> Thread | None:
        raise NotImplementedError

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        thread = self.thread_of(object_id)
        if thread is not None:
            conversation_read_record(reader=request.user, thread=thread)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Message)
class MessageAdmin(AuditedReadAdmin):
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

    def thread_of(self, object_id: str) -> Thread | None:
        message = Message.objects.filter(pk=object_id).select_related("thread").first()
        return message.thread if message else None


@admin.register(Thread)
class ThreadAdmin(AuditedReadAdmin):
    list_display = ("title", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username")
    list_select_related = ("user",)

    def thread_of(self, object_id: str) -> Thread | None:
        return Thread.objects.filter(pk=object_id).first()


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("updated_at", "user", "rating", "comment", "message")
    list_filter = ("rating",)
    list_select_related = ("user",)


@admin.register(ConversationRead)
class ConversationReadAdmin(ReadOnlyAdmin):
    """The read log: visible, never editable, not even by superusers here."""

    list_display = ("read_at", "reader_name", "owner_name", "thread_title")
    search_fields = ("reader_name", "owner_name", "thread_title")
    date_hierarchy = "read_at"
