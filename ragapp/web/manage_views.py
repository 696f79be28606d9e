"""The admins' section of the product: collections, uploads, documents, hit testing.

The Django admin stays for superuser-level fixes; running collections day
to day happens here. Every view is for members of the Admins group (or
superusers), every change is a POST through a service, and the pages work
as plain forms without JavaScript; htmx keeps document statuses live and
upload.js adds drag and drop with a progress bar per file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from ragapp.accounts import services as accounts
from ragapp.accounts.roles import is_admin
from ragapp.documents import selectors, services
from ragapp.documents.downloads import document_download_response
from ragapp.documents.models import Collection, Document
from ragapp.providers.exceptions import ProviderError
from ragapp.retrieval.search import chunk_search
from ragapp.web.forms import CollectionForm, GroupCreateForm, UserCreateForm

DOCUMENTS_PER_PAGE = 100
PASSAGES_PER_PAGE = 200
SEARCH_LIMIT = 20


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


View = Callable[..., HttpResponse]


def admin_required(view: View) -> View:
    """Let admins in; send anonymous visitors to sign in; 403 for everyone else.

    An htmx request (a status poll whose session has ended) is told to load
    the sign-in page as a whole page, not to swap it into a table row.
    """

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.htmx:
                here = request.htmx.current_url_abs_path or reverse(
                    "manage:collections"
                )
                return HttpResponseClientRedirect(redirect_to_login(here).url)
            return redirect_to_login(request.get_full_path())
        if not is_admin(request.user):
            response = render(request, "web/manage/forbidden.html", status=403)
            if request.htmx:
                response["HX-Refresh"] = "true"  # show the refusal, stop polling
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _collection_or_404(request: HttpRequest, collection_id: int) -> Collection:
    try:
        return selectors.collection_get_managed(
            user=request.user, collection_id=collection_id
        )
    except Collection.DoesNotExist:
        raise Http404 from None


def _document_or_404(request: HttpRequest, document_id: int) -> Document:
    try:
        return selectors.document_get_managed(
            user=request.user, document_id=document_id
        )
    except Document.DoesNotExist:
        raise Http404 from None


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def _back_to(collection: Collection, page: str = "") -> HttpResponseRedirect:
    url = reverse("manage:collection", args=[collection.pk])
    if page.isdigit() and page != "1":
        url += f"?page={page}"
    return HttpResponseRedirect(url)


# --- collections -------------------------------------------------------------------


@admin_required
@require_http_methods(["GET", "POST"])
def collections(request: HtmxHttpRequest) -> HttpResponse:
    """Every collection with its documents by status; a form for a new one."""
    form = CollectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            collection = services.collection_create(
                name=data["name"],
                slug=data["slug"] or selectors.collection_free_slug(name=data["name"]),
                description=data["description"],
                reader_groups=list(data["reader_groups"]),
                created_by=request.user,
                embedding_model=data["embedding_model"],
                answer_temperature=data["answer_temperature"],
                answer_top_p=data["answer_top_p"],
                answer_max_tokens=data["answer_max_tokens"],
                answer_seed=data["answer_seed"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            flash.success(request, _("Collection created. Upload its documents here."))
            return HttpResponseRedirect(
                reverse("manage:collection", args=[collection.pk])
            )
    context = {
        "collections": selectors.collection_list_managed(user=request.user),
        "form": form,
    }
    return render(request, "web/manage/collections.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def collection_edit(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """A collection's settings; a new embedding model re-indexes it."""
    collection = _collection_or_404(request, collection_id)
    form = CollectionForm(request.POST or None, collection=collection)
    if request.method == "POST" and form.is_valid():
        try:
            queued = services.collection_update(
                collection=collection, **form.cleaned_data
            )
        except ValidationError as exc:
            collection.refresh_from_db()
            form.add_error(None, exc)
        else:
            flash.success(request, _("Collection saved."))
            if queued:
                flash.info(
                    request,
                    _(
                        "The embedding model changed: %(n)d document(s) queued for "
                        "re-indexing."
                    )
                    % {"n": queued},
                )
            return HttpResponseRedirect(
                reverse("manage:collection", args=[collection.pk])
            )
    context = {"collection": collection, "form": form}
    return render(request, "web/manage/collection_edit.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def collection_delete(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """Ask first; then delete the collection, its documents and their files."""
    collection = _collection_or_404(request, collection_id)
    if request.method == "POST":
        services.collection_delete(collection=collection)
        flash.success(
            request, _("Collection “%(name)s” deleted.") % {"name": collection.name}
        )
        return HttpResponseRedirect(reverse("manage:collections"))
    return render(
        request,
        "web/manage/collection_delete.html",
        {"collection": collection, "count": collection.n_documents},
    )


# --- a collection's documents ------------------------------------------------------


def _documents_context(
    request: HttpRequest, collection: Collection, page: str | None
) -> dict[str, object]:
    documents = selectors.document_list_managed(
        user=request.user, collection=collection
    )
    page_obj = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(page)
    rows = list(page_obj.object_list)
    return {
        "collection": collection,
        "documents": rows,
        "page_obj": page_obj,
        "processing": any(d.is_processing for d in rows),
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
    }


@admin_required
@require_GET
def collection_detail(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """A collection's documents, live, with upload and per-document actions.

    htmx asks for the documents table alone: every 2 s while one of them is
    being indexed (the table stops asking once none is), and after uploads.
    """
    collection = _collection_or_404(request, collection_id)
    context = _documents_context(request, collection, request.GET.get("page"))
    if request.htmx:
        return render(request, "web/manage/collection.html#documents", context)
    return render(request, "web/manage/collection.html", context)


@admin_required
@require_POST
def collection_upload(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """Take one or many files; htmx (one file per request) gets the file's row.

    Files arrive through the size-limited upload handler (settings
    FILE_UPLOAD_HANDLERS), so a file past the limit is never stored; the
    service records it as refused, with the limit in the reason.
    """
    collection = _collection_or_404(request, collection_id)
    files = request.FILES.getlist("files")
    if not files:
        if request.htmx:
            return HttpResponse(_("Choose a file first."), status=400)
        flash.error(request, _("Choose one or more files to upload."))
        return _back_to(collection)
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
    return _back_to(collection)


@admin_required
@require_POST
def documents_action(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """Retry, re-index or delete the selected documents of this collection.

    Deleting asks first: without `confirm` the answer is the list of what
    would go, with a button that sends the same selection again, confirmed.
    Ids of another collection's documents select nothing.
    """
    collection = _collection_or_404(request, collection_id)
    action = request.POST.get("action", "")
    page = request.POST.get("page", "")
    if action not in services.BULK_ACTIONS:
        flash.error(request, _("Choose what to do with the selected documents."))
        return _back_to(collection, page)
    documents = list(
        selectors.document_list_managed(
            user=request.user,
            collection=collection,
            document_ids=_ids(request.POST.getlist("documents")),
        )
    )
    if not documents:
        flash.error(request, _("Select at least one document first."))
        return _back_to(collection, page)
    if action == "delete" and request.POST.get("confirm") != "yes":
        context = {"collection": collection, "documents": documents, "page": page}
        return render(request, "web/manage/documents_delete.html", context)
    outcome = services.document_bulk_apply(documents=documents, action=action)
    _say_outcome(request, action, outcome)
    return _back_to(collection, page)


DONE_MESSAGES = {
    "retry": gettext_lazy("%(n)d document(s) queued again."),
    "reindex": gettext_lazy(
        "%(n)d document(s) queued for re-indexing; their passages stay "
        "searchable until the new ones are in."
    ),
    "delete": gettext_lazy("%(n)d document(s) deleted, with their passages and files."),
}


def _say_outcome(
    request: HttpRequest, action: str, outcome: services.BulkOutcome
) -> list[tuple[str, str]]:
    """Flash what a bulk action did; return the same as (level, text) pairs."""
    said = [("warning", f"“{d.title}”: {reason}") for d, reason in outcome.refused]
    if outcome.done:
        said.insert(0, ("success", str(DONE_MESSAGES[action]) % {"n": outcome.done}))
    if request.htmx:
        return said
    for level, text in said:
        getattr(flash, level)(request, text)
    return said


@admin_required
@require_POST
def document_action(request: HtmxHttpRequest, document_id: int) -> HttpResponse:
    """Retry or re-index one document; htmx gets the refreshed documents table."""
    document = _document_or_404(request, document_id)
    collection = _collection_or_404(request, document.collection_id)
    action = request.POST.get("action", "")
    page = request.POST.get("page", "")
    if action not in {"retry", "reindex"}:
        flash.error(request, _("Choose Retry or Re-index."))
        return _back_to(collection, page)
    outcome = services.document_bulk_apply(documents=[document], action=action)
    said = _say_outcome(request, action, outcome)
    if request.htmx:
        context = {**_documents_context(request, collection, page), "notices": said}
        return render(request, "web/manage/collection.html#documents", context)
    if request.POST.get("next") == "document":
        return HttpResponseRedirect(reverse("manage:document", args=[document.pk]))
    return _back_to(collection, page)


@admin_required
@require_http_methods(["GET", "POST"])
def document_delete(request: HtmxHttpRequest, document_id: int) -> HttpResponse:
    """Ask first; then delete the document, its passages and its stored file."""
    document = _document_or_404(request, document_id)
    collection = document.collection
    if request.method == "POST":
        services.document_delete(document=document)
        flash.success(request, _("“%(title)s” deleted.") % {"title": document.title})
        return _back_to(collection, request.POST.get("page", ""))
    context = {
        "collection": collection,
        "documents": [document],
        "single": document,
        "page": request.GET.get("page", ""),
    }
    return render(request, "web/manage/documents_delete.html", context)


@admin_required
@require_GET
def document_row(request: HtmxHttpRequest, document_id: int) -> HttpResponse:
    """One uploaded document's row as it stands (polled while it is being indexed)."""
    document = _document_or_404(request, document_id)
    return render(request, "web/manage/collection.html#row", {"d": document})


@admin_required
@require_GET
def document_detail(request: HtmxHttpRequest, document_id: int) -> HttpResponse:
    """What the parser extracted, page by page, as the passages it made."""
    document = _document_or_404(request, document_id)
    passages = Paginator(
        selectors.document_passages(document=document), PASSAGES_PER_PAGE
    ).get_page(request.GET.get("page"))
    context = {
        "document": document,
        "pages": selectors.passages_by_page(passages.object_list),
        "page_obj": passages,
        "chunk_count": passages.paginator.count,
        "hidden_text": [w for w in document.warnings if w.startswith("Hidden text:")],
        "other_warnings": [
            w for w in document.warnings if not w.startswith("Hidden text:")
        ],
    }
    return render(request, "web/manage/document.html", context)


@admin_required
@require_GET
def document_download(request: HtmxHttpRequest, document_id: int) -> FileResponse:
    """The stored original, as an attachment that can never run as our page (T11)."""
    return document_download_response(_document_or_404(request, document_id))


# --- hit testing -------------------------------------------------------------------


@admin_required
@require_GET
def collection_search(request: HtmxHttpRequest, collection_id: int) -> HttpResponse:
    """Hit testing: the ranked passages a query finds here, with every score."""
    collection = _collection_or_404(request, collection_id)
    query = request.GET.get("q", "").strip()[:500]
    passages, error, elapsed_ms = [], "", None
    if query:
        started = time.perf_counter()
        try:
            passages = chunk_search(
                user=request.user,
                query=query,
                collection_ids=[collection.pk],
                limit=SEARCH_LIMIT,
            )
        except ProviderError as exc:
            error = _(
                "The search could not embed the query: %(reason)s Try again in a "
                "minute, or check the model settings."
            ) % {"reason": exc}
        elapsed_ms = round((time.perf_counter() - started) * 1000)
    context = {
        "collection": collection,
        "query": query,
        "passages": passages,
        "error": error,
        "elapsed_ms": elapsed_ms,
    }
    if request.htmx:
        return render(request, "web/manage/search.html#results", context)
    return render(request, "web/manage/search.html", context)


# --- people ------------------------------------------------------------------------


def _people_context(request: HttpRequest, **extra: object) -> dict[str, object]:
    people = get_user_model().objects.prefetch_related("groups").order_by("username")
    return {
        "people": people,
        "groups": Group.objects.order_by("name"),
        "user_form": UserCreateForm(),
        "group_form": GroupCreateForm(),
        **extra,
    }


@admin_required
@require_http_methods(["GET", "POST"])
def users(request: HtmxHttpRequest) -> HttpResponse:
    """Everyone with their groups; make an account or a group.

    A new account's password is shown in the answer to the POST itself,
    never through a redirect and a flashed message (messages may travel
    in a cookie), and that answer is not cached.
    """
    if request.method == "POST" and request.POST.get("form") == "group":
        group_form = GroupCreateForm(request.POST)
        if group_form.is_valid():
            try:
                group = accounts.group_create(
                    actor=request.user, name=group_form.cleaned_data["name"]
                )
            except accounts.AccountError as exc:
                group_form.add_error("name", str(exc))
            else:
                flash.success(
                    request, _("Group “%(name)s” created.") % {"name": group.name}
                )
                return HttpResponseRedirect(reverse("manage:users"))
        return render(
            request,
            "web/manage/users.html",
            _people_context(request, group_form=group_form),
        )
    if request.method == "POST":
        user_form = UserCreateForm(request.POST)
        if user_form.is_valid():
            data = user_form.cleaned_data
            try:
                person, password = accounts.user_create(
                    actor=request.user,
                    username=data["username"],
                    email=data["email"],
                    password=data["password"],
                    groups=list(data["groups"]),
                )
            except accounts.AccountError as exc:
                user_form.add_error(None, str(exc))
            else:
                context = _people_context(
                    request,
                    created_user=person,
                    created_password=password,
                    password_generated=not data["password"],
                )
                response = render(request, "web/manage/users.html", context)
                response["Cache-Control"] = "no-store"
                return response
        return render(
            request,
            "web/manage/users.html",
            _people_context(request, user_form=user_form),
        )
    return render(request, "web/manage/users.html", _people_context(request))


@admin_required
@require_POST
def user_update(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    """Set someone's groups and whether their account is enabled, together."""
    person = get_user_model().objects.filter(pk=user_id).first()
    if person is None:
        raise Http404
    groups = list(Group.objects.filter(pk__in=_ids(request.POST.getlist("groups"))))
    try:
        ended = accounts.user_update(
            actor=request.user,
            user=person,
            groups=groups,
            active="active" in request.POST,
        )
    except accounts.AccountError as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, _("Saved %(name)s.") % {"name": person.get_username()})
        if ended:
            flash.info(
                request,
                _("%(name)s is signed out everywhere (%(n)d session(s) ended).")
                % {"name": person.get_username(), "n": ended},
            )
    return HttpResponseRedirect(reverse("manage:users") + f"#user-{person.pk}")
