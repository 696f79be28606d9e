"""Django admin for collections, documents and chunks.

Documents and chunks are read-only here until the ingestion pipeline owns their
creation (TODO #4: upload through the admin calls the ingestion service).
"""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from ragapp.documents.models import Chunk, Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "document_count", "embedding_model", "updated_at")
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("reader_groups",)
    readonly_fields = ("created_by", "created_at", "updated_at")
    fields = (
        "name",
        "slug",
        "description",
        "reader_groups",
        "embedding_model",
        "embedding_dimensions",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return super().get_queryset(request).annotate(_documents=Count("documents"))

    @admin.display(description="documents", ordering="_documents")
    def document_count(self, obj: Collection) -> int:
        return obj._documents

    def save_model(
        self, request: HttpRequest, obj: Collection, form: object, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: object | None = None
    ) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = (
        "title",
        "collection",
        "status",
        "size_bytes",
        "page_count",
        "created_at",
    )
    list_filter = ("status", "collection")
    search_fields = ("title", "original_filename", "sha256")
    date_hierarchy = "created_at"


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ("document", "ordinal", "page_start", "page_end", "token_count")
    list_filter = ("collection",)
    search_fields = ("text", "heading")
    exclude = ("embedding",)
