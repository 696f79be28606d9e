from django.urls import path

from ragapp.web import manage_views as views

app_name = "manage"

urlpatterns = [
    path("", views.collections, name="collections"),
    path(
        "collections/<int:collection_id>/", views.collection_detail, name="collection"
    ),
    path(
        "collections/<int:collection_id>/edit",
        views.collection_edit,
        name="collection-edit",
    ),
    path(
        "collections/<int:collection_id>/delete",
        views.collection_delete,
        name="collection-delete",
    ),
    path(
        "collections/<int:collection_id>/upload",
        views.collection_upload,
        name="collection-upload",
    ),
    path(
        "collections/<int:collection_id>/documents",
        views.documents_action,
        name="documents-action",
    ),
    path(
        "collections/<int:collection_id>/search/",
        views.collection_search,
        name="collection-search",
    ),
    path("users/", views.users, name="users"),
    path("users/<int:user_id>/", views.user_update, name="user-update"),
    path("documents/<int:document_id>/", views.document_detail, name="document"),
    path("documents/<int:document_id>/row", views.document_row, name="document-row"),
    path(
        "documents/<int:document_id>/action",
        views.document_action,
        name="document-action",
    ),
    path(
        "documents/<int:document_id>/delete",
        views.document_delete,
        name="document-delete",
    ),
    path(
        "documents/<int:document_id>/download",
        views.document_download,
        name="document-download",
    ),
]
