"""Django admin for collections, documents and chunks.

Admin actions and the upload page call the services; nothing here writes rows
itself, so the admin, the web UI and the API share one set of rules.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ragapp.documents import services
from ragapp.documents.exceptions import DocumentActionError
from ragapp.documents.models import Chunk, Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "document_count", "embedding_model", "updated_at")
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("reader_groups",)
    readonly_fields = ("embedding_dimensions", "created_by", "created_at", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "slug",
                    "description",
                    "reader_groups",
                    "embedding_model",
                    "embedding_dimensions",
                )
            },
        ),
        (
            _("Answers"),
            {
                "description": _(
                    "Sampling of the chat model for questions asked in this "
                    "collection alone; empty uses the model's default."
                ),
                "fields": (
                    ("answer_temperature", "answer_top_p"),
                    ("answer_max_tokens", "answer_seed"),
                ),
            },
        ),
        (None, {"fields": ("created_by", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return super().get_queryset(request).annotate(_documents=Count("documents"))

    @admin.display(description=_("documents"), ordering="_documents")
    def document_count(self, obj: Collection) -> int:
        return obj._documents

    def save_model(
        self, request: HttpRequest, obj: Collection, form: forms.ModelForm, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user
            super().save_model(request, obj, form, change)
            return
        new_model = obj.embedding_model
        if "embedding_model" in form.changed_data:
            obj.embedding_model = form.initial["embedding_model"]
        super().save_model(request, obj, form, change)
        if "embedding_model" in form.changed_data:
            queued = services.collection_change_embedding_model(
                collection=obj, model=new_model
            )
            self.message_user(
                request,
                _("Embedding model changed; %(n)d documents queued for re-indexing.")
                % {"n": queued},
            )

    def delete_model(self, request: HttpRequest, obj: Collection) -> None:
        services.collection_delete(collection=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for collection in queryset:
            services.collection_delete(collection=collection)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        # The upload service records empty files with their reason, like any
        # other refused file, so the form lets them through.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: object, initial: object = None) -> list:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    collection = forms.ModelChoiceField(queryset=Collection.objects.all())
    files = MultipleFileField(
        help_text=_("PDF, Word (.docx), Markdown, plain text or HTML.")
    )


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "collection",
        "status_with_progress",
        "error_message",
        "page_count",
        "size_bytes",
        "created_at",
    )
    list_filter = ("status", "collection", "content_type")
    search_fields = ("title", "original_filename", "sha256")
    date_hierarchy = "created_at"
    actions = ("retry_documents", "reindex_documents")
    change_list_template = "admin/documents/document/change_list.html"
    readonly_fields = (
        "collection",
        "original_filename",
        "sha256",
        "content_type",
        "size_bytes",
        "page_count",
        "status",
        "status_changed_at",
        "error_code",
        "error_message",
        "warnings",
        "progress_done",
        "progress_total",
        "indexed_version",
        "indexed_at",
        "started_at",
        "finished_at",
        "uploaded_by",
        "created_at",
    )
    fields = ("title", "attributes", *readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through upload_view, which calls the service

    @admin.display(description=_("status"), ordering="status")
    def status_with_progress(self, obj: Document) -> str:
        if obj.status == Document.Status.EMBEDDING and obj.progress_total:
            return format_html(
                "{} {}/{}",
                obj.get_status_display(),
                obj.progress_done,
                obj.progress_total,
            )
        return obj.get_status_display()

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="documents_document_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Upload one or many files into a collection."""
        if not request.user.has_perm("documents.add_document"):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            for uploaded in form.cleaned_data["files"]:
                outcome = services.document_upload(
                    collection=form.cleaned_data["collection"],
                    stream=uploaded,
                    filename=uploaded.name,
                    uploaded_by=request.user,
                )
                failed = outcome.document.status == Document.Status.FAILED
                level = (
                    messages.WARNING
                    if failed or not outcome.created
                    else messages.SUCCESS
                )
                self.message_user(request, outcome.message, level=level)
            return HttpResponseRedirect(reverse("admin:documents_document_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Upload documents"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/documents/document/upload.html", context
        )

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Document],
        action: object,
        done: str,
    ) -> None:
        count = 0
        for document in queryset:
            try:
                action(document=document)
            except DocumentActionError as exc:
                self.message_user(
                    request, f"{document.title}: {exc}", level=messages.WARNING
                )
            else:
                count += 1
        if count:
            self.message_user(request, done % {"n": count})

    @admin.action(description=_("Retry the selected failed documents"))
    def retry_documents(
        self, request: HttpRequest, queryset: QuerySet[Document]
    ) -> None:
        self._apply(
            request, queryset, services.document_retry, _("%(n)d queued again.")
        )

    @admin.action(description=_("Re-index the selected documents"))
    def reindex_documents(
        self, request: HttpRequest, queryset: QuerySet[Document]
    ) -> None:
        self._apply(
            request,
            queryset,
            services.document_reindex,
            _("%(n)d queued for re-indexing."),
        )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for document in queryset:
            services.document_delete(document=document)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the pipeline owns: shown, never edited or deleted by hand.

    Deleting a chunk here would cut a document in half and bypass the
    search statistics kept with every swap; delete the document instead.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: object | None = None
    ) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: object | None = None
    ) -> bool:
        return False


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = (
        "document",
        "version",
        "ordinal",
        "page_start",
        "page_end",
        "token_count",
    )
    list_filter = ("collection",)
    search_fields = ("text", "heading")
    exclude = ("embedding",)
