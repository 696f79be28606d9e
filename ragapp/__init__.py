"""ragapp: self-hosted document question answering.

The package imports nothing: the sandboxed parse child imports
`ragapp.documents.parsing` once per upload, and loading Celery here cost it
about 150 ms of its start. Django processes load the Celery app in
`RuntimeConfig.ready()`; `celery -A ragapp` finds `ragapp.celery` itself.
"""
