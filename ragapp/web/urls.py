from django.urls import path

from ragapp.web import keys_views, streams, usage_views, views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("ask/", views.ask_page, name="ask"),
    path("ask/send", views.ask_submit, name="ask-submit"),
    path("ask/<int:thread_id>/", views.ask_page, name="thread"),
    path("ask/<int:thread_id>/rename", views.thread_rename_view, name="thread-rename"),
    path("ask/<int:thread_id>/delete", views.thread_delete_view, name="thread-delete"),
    path("threads/", views.thread_list, name="threads"),
    path("ask/messages/<int:message_id>/", views.message_turn, name="message"),
    path(
        "ask/messages/<int:message_id>/stream",
        streams.message_stream,
        name="message-stream",
    ),
    path("ask/messages/<int:message_id>/stop", views.message_stop, name="message-stop"),
    path(
        "ask/messages/<int:message_id>/feedback",
        views.message_feedback,
        name="message-feedback",
    ),
    path(
        "ask/messages/<int:message_id>/sources/<int:marker>/",
        views.citation_view,
        name="citation",
    ),
    path(
        "ask/messages/<int:message_id>/sources/<int:marker>/page-<int:page>.png",
        views.citation_page_image,
        name="citation-page",
    ),
    path("keys/", keys_views.keys_page, name="keys"),
    path("keys/<int:key_id>/revoke", keys_views.key_revoke, name="key-revoke"),
    path("usage/", usage_views.usage_page, name="usage"),
    path(
        "usage/conversations/<int:thread_id>/",
        usage_views.conversation_audit,
        name="usage-conversation",
    ),
    path("documents/<int:document_id>/file", views.document_file, name="document-file"),
    path(
        "documents/<int:document_id>/passages/",
        views.document_passages,
        name="document-passages",
    ),
]
