"""The native JSON API under /api/: collections, documents, search, ask, threads.

Every route works as the key's user through the same services and selectors
as the web pages, narrowed by the key's scope (ragapp.api.callers), and every
error is `{"error": {"code", "message"}}` (ragapp.api.errors).
"""
