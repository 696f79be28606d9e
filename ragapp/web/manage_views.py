"""The admins' section of the product: collections, uploads, documents, hit testing.

The Django admin stays for superuser-level fixes; running collections day
to day happens here. Every view is for members of the Admins group (or
superusers), every change is a POST through a documents service, and the
pages work as plain forms without JavaScript; htmx keeps document statuses
live and upload.js adds drag and drop with a progress bar per file.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ragapp.accounts import services as accounts
from ragapp.documents import services
from ragapp.documents.exceptions import DocumentActionError
from ragapp.documents.models import Chunk, Collection, Document
from ragapp.retrieval.search import chunk_search
from ragapp.web.forms import CollectionForm
from ragapp.web.usage_views import admin_only

PROCESSING = [
    Document.Status.QUEUED,
    Document.Status.PARSING,
    Document.Status.EMBEDDING,
]
ACTIONS = {
    "retry": (services.document_retry, _("queued again")),
    "reindex": (services.document_reindex, _("re-indexing")),
    "delete": (services.document_delete, _("deleted")),
}


def _collections() -> list[Collection]:
    counts = {
        f"n_{status}": Count("documents", filter=Q(documents__status=status))
        for status in Document.Status.values
    }
    return list(
        Collection.objects.annotate(n_documents=Count("documents"), **counts)
        .prefetch_related("reader_groups")
        .order_by("name")
    )


def _collection_or_404(collection_id: int) -> Collection:
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is None:
        raise Http404
    return collection


def _document_or_404(document_id: int) -> Document:
    document = (
        Document.objects.select_related("collection").filter(pk=document_id).first()
    )
    if document is None:
        raise Http404
    return document


@admin_only
@require_http_methods(["GET", "POST"])
def collections(request: HttpRequest) -> HttpResponse:
    """Every collection with its documents by status; a form for a new one."""
    form = CollectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        collection = services.collection_create(
            name=data["name"],
            slug=_free_slug(data["name"]),
            description=data["description"],
            reader_groups=list(data["reader_groups"]),
            created_by=request.user,
        )
        flash.success(request, _("Collection created. Upload its documents here."))
        return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))
    return render(
        request,
        "web/manage/collections.html",
        {"collections": _collections(), "form": form},
    )


def _free_slug(name: str) -> str:
    base = slugify(name)[:90] or "collection"
    slug, n = base, 2
    while Collection.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@admin_only
@require_GET
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    """A collection's documents, live, with upload and per-document actions."""
    collection = _collection_or_404(collection_id)
    documents = list(collection.documents.select_related("uploaded_by"))
    context = {
        "collection": collection,
        "documents": documents,
        "processing": any(d.status in PROCESSING for d in documents),
    }
    if request.htmx:
        return render(request, "web/manage/collection.html#documents", context)
    return render(request, "web/manage/collection.html", context)


@admin_only
@require_http_methods(["GET", "POST"])
def collection_edit(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = _collection_or_404(collection_id)
    form = CollectionForm(request.POST or None, collection=collection)
    if request.method == "POST" and form.is_valid():
        services.collection_update(collection=collection, **form.cleaned_data)
        flash.success(request, _("Collection saved."))
        return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))
    return render(
        request,
        "web/manage/collection_edit.html",
        {"collection": collection, "form": form},
    )


@admin_only
@require_http_methods(["GET", "POST"])
def collection_delete(request: HttpRequest, collection_id: int) -> HttpResponse:
    """Ask first; then delete the collection, its documents and their files."""
    collection = _collection_or_404(collection_id)
    if request.method == "POST":
        services.collection_delete(collection=collection)
        flash.success(request, _("Collection deleted."))
        return HttpResponseRedirect(reverse("manage:collections"))
    return render(
        request,
        "web/manage/collection_delete.html",
        {"collection": collection, "count": collection.documents.count()},
    )


@admin_only
@require_POST
def collection_upload(request: HttpRequest, collection_id: int) -> HttpResponse:
    """Take one or many files; htmx (one file per request) gets the file's row."""
    collection = _collection_or_404(collection_id)
    files = request.FILES.getlist("files")
    if not files:
        if request.htmx:
            return HttpResponse(_("Choose a file first."), status=400)
        flash.error(request, _("Choose one or more files to upload."))
        return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))
    outcomes = [
        services.document_upload(
            collection=collection,
            stream=uploaded,
            filename=uploaded.name,
            uploaded_by=request.user,
        )
        for uploaded in files
    ]
    if request.htmx:
        return render(
            request,
            "web/manage/collection.html#uploaded",
            {"outcomes": outcomes, "collection": collection},
        )
    for outcome in outcomes:
        failed = outcome.document.status == Document.Status.FAILED
        (flash.warning if failed or not outcome.created else flash.success)(
            request, outcome.message
        )
    return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))


@admin_only
@require_GET
def document_row(request: HttpRequest, document_id: int) -> HttpResponse:
    """One document's row as it stands (polled while it is being indexed)."""
    document = _document_or_404(document_id)
    return render(request, "web/manage/collection.html#row", {"d": document})


@admin_only
@require_POST
def documents_action(request: HttpRequest, collection_id: int) -> HttpResponse:
    """Retry, re-index or delete the selected documents (one or many)."""
    collection = _collection_or_404(collection_id)
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        flash.error(request, _("Choose what to do with the selected documents."))
        return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))
    ids = [int(i) for i in request.POST.getlist("documents") if i.isdigit()]
    run, done = ACTIONS[action]
    count = 0
    for document in collection.documents.filter(pk__in=ids):
        try:
            run(document=document)
            count += 1
        except DocumentActionError as exc:
            flash.warning(request, f"“{document.title}”: {exc}")
    if count:
        flash.success(
            request,
            _("%(count)d document(s) %(done)s.") % {"count": count, "done": done},
        )
    elif not ids:
        flash.error(request, _("Select at least one document."))
    return HttpResponseRedirect(reverse("manage:collection", args=[collection.pk]))


@admin_only
@require_GET
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    """What the parser extracted, page by page, as the passages it made."""
    document = _document_or_404(document_id)
    chunks = Chunk.objects.filter(
        document=document, version=document.indexed_version
    ).order_by("ordinal")
    pages: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        if chunk.page_start:
            label = _("Page %(n)d") % {"n": chunk.page_start}
        else:
            label = _("No page numbers")
        pages.setdefault(label, []).append(chunk)
    return render(
        request,
        "web/manage/document.html",
        {"document": document, "pages": pages, "chunk_count": len(chunks)},
    )


@admin_only
@require_GET
def collection_search(request: HttpRequest, collection_id: int) -> HttpResponse:
    """Hit testing: the ranked passages a query finds here, with every score."""
    collection = _collection_or_404(collection_id)
    query = request.GET.get("q", "").strip()[:500]
    passages = (
        chunk_search(
            user=request.user, query=query, collection_ids=[collection.pk], limit=20
        )
        if query
        else []
    )
    context = {"collection": collection, "query": query, "passages": passages}
    if request.htmx:
        return render(request, "web/manage/search.html#results", context)
    return render(request, "web/manage/search.html", context)


# --- people ------------------------------------------------------------------------


@admin_only
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    """Everyone with their groups; make an account or a group."""
    created: tuple[object, str] | None = None
    if request.method == "POST":
        try:
            if request.POST.get("form") == "group":
                group = accounts.group_create(
                    actor=request.user, name=request.POST.get("name", "")
                )
                flash.success(
                    request, _("Group “%(name)s” created.") % {"name": group.name}
                )
            else:
                groups = list(Group.objects.filter(pk__in=_ids(request, "groups")))
                created = accounts.user_create(
                    actor=request.user,
                    username=request.POST.get("username", ""),
                    email=request.POST.get("email", ""),
                    groups=groups or None,
                )
        except accounts.AccountError as exc:
            flash.error(request, str(exc))
        if created is None:
            return HttpResponseRedirect(reverse("manage:users"))
    people = get_user_model().objects.prefetch_related("groups").order_by("username")
    context = {
        "people": people,
        "groups": Group.objects.order_by("name"),
        "created_user": created[0] if created else None,
        "created_password": created[1] if created else "",
    }
    response = render(request, "web/manage/users.html", context)
    if created:
        response["Cache-Control"] = "no-store"  # the password is shown once
    return response


@admin_only
@require_POST
def user_update(request: HttpRequest, user_id: int) -> HttpResponse:
    """Set someone's groups and whether their account is enabled."""
    person = get_user_model().objects.filter(pk=user_id).first()
    if person is None:
        raise Http404
    try:
        groups = list(Group.objects.filter(pk__in=_ids(request, "groups")))
        accounts.user_set_groups(actor=request.user, user=person, groups=groups)
        accounts.user_set_active(
            actor=request.user, user=person, active="active" in request.POST
        )
        flash.success(request, _("Saved %(name)s.") % {"name": person.get_username()})
    except accounts.AccountError as exc:
        flash.error(request, str(exc))
    return HttpResponseRedirect(reverse("manage:users") + f"#user-{person.pk}")


def _ids(request: HttpRequest, name: str) -> list[int]:
    return [int(v) for v in request.POST.getlist(name) if v.isdigit()]
