# The image docker-compose.yml runs as `web`, `worker` and `migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ORT_DISABLE_TELEMETRY=1

RUN useradd --create-home --uid 10001 ragapp
WORKDIR /app

COPY pyproject.toml README.md manage.py ./
COPY ragapp ./ragapp
COPY templates ./templates
COPY static ./static
# Editable, so the project root (templates/, static/) stays next to the code.
RUN pip install -e .

# Static files are collected into the image; the data dir is a volume.
ENV RAGAPP_STATIC_ROOT=/app/staticfiles
RUN RAGAPP_DATA_DIR=/tmp/build-data SECRET_KEY=build-only \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-data && mkdir -p /data && chown ragapp:ragapp /data

ENV RAGAPP_DATA_DIR=/data
USER ragapp
EXPOSE 8000
CMD ["uvicorn", "ragapp.asgi:application", "--host=0.0.0.0", "--port=8000", "--proxy-headers"]
