"""The interactive docs at /api/docs, served under the site's CSP.

django-ninja's page loads Swagger UI from its own static files (no CDN), but
its script tags carry no nonce, so the policy (`script-src 'self' 'nonce-…'`)
leaves them to `'self'` and the crawl of every route (T07) asks for the
nonce on each. This page is the same with the nonce on every script.
"""

from __future__ import annotations

from ninja.openapi.docs import Swagger


class NoncedSwagger(Swagger):
    template = "api/swagger.html"
