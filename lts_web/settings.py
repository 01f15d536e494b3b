"""LTS Studio settings: one module, driven by environment variables (see README "Configuration").

Every value goes through a typed helper in lts_web.env that raises ImproperlyConfigured on a bad value.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp import constants as _csp
from django.core.exceptions import ImproperlyConfigured

from lts_web.env import envbool, envfloat, envint, envlist, envpath, envrate, envsecret, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = envpath("LTS_VAR_DIR", BASE_DIR / "var")

DEBUG = envbool("DEBUG", False)
# `make run` (workers/stack.py) sets it: the whole system on this machine over plain HTTP, with DEBUG off. No HTTPS
# redirect, secure-only cookies or HSTS (there is no TLS to send them over), and static files served from the apps'
# folders as they are (no collectstatic step that could go stale after a `git pull`).
LTS_LOCAL_HTTP = envbool("LTS_LOCAL_HTTP", False)
SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off; on a local checkout "
                                   "set DEBUG=1, or run commands while `make run` runs (it leaves var/stack.env)")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"
elif not DEBUG and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters when DEBUG is off")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG or LTS_LOCAL_HTTP else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "lts_web",
    "searches",
    "models_zoo",
    "models_zoo.proxy_checks",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "lts_web.middleware.BadInputMiddleware",  # NUL in a path or query, ids that are not ids: 400, not 500
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "lts_web.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused by the lock-out into its 429 page (settings "Hardening" below).
    "axes.middleware.AxesMiddleware",
]

# An index's INCLUDE columns serve PostgreSQL (searches.Candidate's candidate_job_order); SQLite builds the index
# without them, which is all it needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

ROOT_URLCONF = "lts_web.urls"
WSGI_APPLICATION = "lts_web.wsgi.application"
ASGI_APPLICATION = "lts_web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "lts_web" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL (postgres://user@host:5432/name) or the embedded SQLite file.
_database_url = envstr("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=envint("DB_CONN_MAX_AGE", 60, minimum=0))}
except Exception as exc:  # dj_database_url raises ValueError or its own errors for unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL={_database_url!r} is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # transactions avoid the "database is locked" upgrade deadlock, 20 s covers a long write.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not Django's default in-memory test database: tests start real worker processes that must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Plotly.js is the project's own bundle in lts_web/static/plotly/ (no CDN: users run closed networks; the trace types
# the pages draw, 1.5 MB on load and the 3-D trace's 0.55 MB chunk when a 3-D view is shown, instead of the full
# 4.8 MB: lts_web/frontend/plotly/build.js).
# Without collectstatic (tests, DEBUG, `make run`), serve straight from the app folders.
WHITENOISE_USE_FINDERS = DEBUG or LTS_LOCAL_HTTP
if WHITENOISE_USE_FINDERS:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# Where the system keeps what it makes and reads.
LTS_DATA_ROOT = envpath("LTS_DATA_ROOT", VAR_DIR / "data")  # registered corpora; paths are confined to it
LTS_ARTIFACT_ROOT = envpath("LTS_ARTIFACT_ROOT", VAR_DIR / "artifacts")  # checkpoints, exports, zoo models
LTS_DEVICE = envstr("LTS_DEVICE", "local") or "local"
# A profiling worker beats every LTS_HEARTBEAT_S; a device or a running measurement silent for
# LTS_DEVICE_OFFLINE_AFTER_S (3 missed beats) is offline or stale.
LTS_HEARTBEAT_S = envint("LTS_HEARTBEAT_S", 10, minimum=1)
LTS_DEVICE_OFFLINE_AFTER_S = envint("LTS_DEVICE_OFFLINE_AFTER_S", 30, minimum=3)
# A measurement is re-queued after a lost worker at most this many times, then fails with the reason.
LTS_MEASUREMENT_MAX_ATTEMPTS = envint("LTS_MEASUREMENT_MAX_ATTEMPTS", 3, minimum=1)
# A pending measurement (or queued training run) unclaimed this long whose message is not in its queue lost it, and is
# sent again; after a broker that lost its data (searches.queues.broker_lost_data) every one is checked at once.
LTS_PENDING_REDISPATCH_S = envint("LTS_PENDING_REDISPATCH_S", 600, minimum=10)
# An active search whose last orchestration step is older than this gets another (lost messages, dead workers).
LTS_JOB_STALL_S = envint("LTS_JOB_STALL_S", 60, minimum=1)
# A single measurement (one child process) is killed after this long.
LTS_PROFILE_TIMEOUT_S = envint("LTS_PROFILE_TIMEOUT_S", 600, minimum=5)
# New searches may ask for at most this many profiling threads (and never more than their device's cores), and at most
# this many seconds of timed runs (max_seconds) and of waiting out a slow host (host_wait_s). The maximums are the
# core's absolute caps (searches/core/profiling/settings.py MAX_THREADS, MAX_PROFILE_SECONDS).
LTS_PROFILE_MAX_THREADS = envint("LTS_PROFILE_MAX_THREADS", 256, minimum=1, maximum=1024)
LTS_PROFILE_MAX_SECONDS = envint("LTS_PROFILE_MAX_SECONDS", 600, minimum=1, maximum=3600)
# Training (models_zoo): an uploaded dataset may be this large; a run whose worker died is resumed from its last
# checkpoint at most LTS_TRAIN_MAX_ATTEMPTS times in all, then fails with the reason; progress is written at most every
# LTS_TRAIN_PROGRESS_S (evaluations, checkpoints and the end always); auto = cuda when the worker has a GPU, else cpu.
LTS_MAX_UPLOAD_MB = envint("LTS_MAX_UPLOAD_MB", 200, minimum=1)
LTS_TRAIN_MAX_ATTEMPTS = envint("LTS_TRAIN_MAX_ATTEMPTS", 3, minimum=1)
LTS_TRAIN_PROGRESS_S = envfloat("LTS_TRAIN_PROGRESS_S", 2.0, minimum=0.0)
LTS_TRAIN_DEVICE = envstr("LTS_TRAIN_DEVICE", "auto") or "auto"
# Generation (the playground and /api/v1/models/<id>/generate): limits per request and per user; a request that no
# `generate` worker starts within LTS_GENERATE_QUEUE_WAIT_S is dropped with an error. Each generation worker process
# keeps recently used models loaded within LTS_GENERATE_CACHE_MB, with LTS_GENERATE_THREADS torch threads (0: torch's
# default) per process, and sends text at most every LTS_GENERATE_STREAM_INTERVAL_S (several tokens per event from a
# model faster than that).
LTS_GENERATE_MAX_NEW_TOKENS = envint("LTS_GENERATE_MAX_NEW_TOKENS", 256, minimum=1)
LTS_GENERATE_MAX_PROMPT_CHARS = envint("LTS_GENERATE_MAX_PROMPT_CHARS", 4000, minimum=1)
LTS_GENERATE_MAX_PROMPT_TOKENS = envint("LTS_GENERATE_MAX_PROMPT_TOKENS", 1024, minimum=1)
LTS_GENERATE_TIME_LIMIT_S = envfloat("LTS_GENERATE_TIME_LIMIT_S", 60.0, minimum=1.0)
LTS_GENERATE_MAX_CONCURRENT = envint("LTS_GENERATE_MAX_CONCURRENT", 3, minimum=1)  # per user: 3 models side by side
LTS_GENERATE_QUEUE_WAIT_S = envfloat("LTS_GENERATE_QUEUE_WAIT_S", 30.0, minimum=1.0)
LTS_GENERATE_CACHE_MB = envint("LTS_GENERATE_CACHE_MB", 2048, minimum=1)
LTS_GENERATE_THREADS = envint("LTS_GENERATE_THREADS", 0, minimum=0)
LTS_GENERATE_STREAM_INTERVAL_S = envfloat("LTS_GENERATE_STREAM_INTERVAL_S", 0.02, minimum=0.0)

# Notifications (notifications/): the address links in webhook messages start with; webhooks refuse loopback,
# private, link-local, multicast and reserved addresses (at registration and at each delivery) unless
# LTS_WEBHOOK_ALLOW_PRIVATE; each attempt waits at most LTS_WEBHOOK_TIMEOUT_S per network step; a failed attempt that
# may pass (timeout, 5xx, 429) is tried again after about LTS_WEBHOOK_BACKOFF_S, doubling up to
# LTS_WEBHOOK_BACKOFF_MAX_S (full jitter), LTS_WEBHOOK_MAX_ATTEMPTS attempts in all; a team has at most
# LTS_WEBHOOKS_PER_TEAM webhooks, and each keeps its newest LTS_WEBHOOK_LOG_KEEP deliveries.
LTS_PUBLIC_URL = (envstr("LTS_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
if not LTS_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"LTS_PUBLIC_URL={LTS_PUBLIC_URL!r} must start with http:// or https://")
LTS_WEBHOOK_ALLOW_PRIVATE = envbool("LTS_WEBHOOK_ALLOW_PRIVATE", False)
LTS_WEBHOOK_TIMEOUT_S = envfloat("LTS_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1)
if LTS_WEBHOOK_TIMEOUT_S > 60:  # an attempt holds a `control` worker process: never minutes
    raise ImproperlyConfigured(f"LTS_WEBHOOK_TIMEOUT_S={LTS_WEBHOOK_TIMEOUT_S} is above the maximum 60")
LTS_WEBHOOK_MAX_ATTEMPTS = envint("LTS_WEBHOOK_MAX_ATTEMPTS", 5, minimum=1, maximum=20)
LTS_WEBHOOK_BACKOFF_S = envint("LTS_WEBHOOK_BACKOFF_S", 10, minimum=1, maximum=3600)
LTS_WEBHOOK_BACKOFF_MAX_S = envint("LTS_WEBHOOK_BACKOFF_MAX_S", 600, minimum=1, maximum=86400)
LTS_WEBHOOKS_PER_TEAM = envint("LTS_WEBHOOKS_PER_TEAM", 20, minimum=1, maximum=1000)
# A delivery whose message (or retry, from when it was due) no worker took within LTS_WEBHOOK_RESEND_AFTER_S (the
# broker could not be reached, or lost it), or whose attempt has run that long (its worker died), is sent again by
# beat's reaper, at most LTS_WEBHOOK_MAX_RESENDS times, then fails with the reason. It must outlast an attempt: four
# network steps of LTS_WEBHOOK_TIMEOUT_S (connect, send, the answer's head, its body) and 30 s for a slow resolver.
LTS_WEBHOOK_RESEND_AFTER_S = envint("LTS_WEBHOOK_RESEND_AFTER_S", 300, minimum=60, maximum=86400)
if LTS_WEBHOOK_RESEND_AFTER_S < 4 * LTS_WEBHOOK_TIMEOUT_S + 30:
    raise ImproperlyConfigured(f"LTS_WEBHOOK_RESEND_AFTER_S={LTS_WEBHOOK_RESEND_AFTER_S} is below "
                               f"{4 * LTS_WEBHOOK_TIMEOUT_S + 30:g}: an attempt (4 x LTS_WEBHOOK_TIMEOUT_S + 30 s) "
                               "may still be running then")
LTS_WEBHOOK_MAX_RESENDS = envint("LTS_WEBHOOK_MAX_RESENDS", 5, minimum=0, maximum=50)
LTS_WEBHOOK_LOG_KEEP = envint("LTS_WEBHOOK_LOG_KEEP", 100, minimum=1, maximum=10000)

# Redis: the Celery broker and result store. REDIS_URL is the default for both.
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND") or REDIS_URL
for _name, _url in (("REDIS_URL", REDIS_URL), ("CELERY_BROKER_URL", CELERY_BROKER_URL)):
    if not _url or not _url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{_name}={_url!r} must be a redis:// or rediss:// URL")



def _next_redis_db(url: str) -> str:
    """The same server, the next database number: a cache.clear() (FLUSHDB) must never empty the broker's queues."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{db + 1}"))


# Shared cache (frontiers computed on demand, keyed by job revision): CACHE_URL, or the broker's Redis server on the
# next database number.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                      "LOCATION": envstr("CACHE_URL") or _next_redis_db(REDIS_URL), "KEY_PREFIX": "lts",
                      "TIMEOUT": 3600}}

# The longest training run we allow; the broker's visibility timeout must outlast it, or Redis would hand
# an acks_late task that is still running to a second worker.
LTS_MAX_TASK_SECONDS = envint("LTS_MAX_TASK_SECONDS", 12 * 3600, minimum=60)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": LTS_MAX_TASK_SECONDS + 3600}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": LTS_MAX_TASK_SECONDS + 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = envint("CELERY_RESULT_EXPIRES", 24 * 3600, minimum=60)
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The modules that register the tasks (and workers.devices, the profiling worker's device registration), imported
# by every worker at start; the web side sends by name (lts_web/queueing.py) and imports none of them.
CELERY_IMPORTS = ["workers.devices", "workers.tasks", "workers.training", "workers.generation", "workers.proxy_checks",
                  "workers.notifications"]
CELERY_TASK_ROUTES = {"workers.tasks.*": {"queue": "control"}, "workers.training.train_model": {"queue": "train"},
                      "workers.training.import_hub_model": {"queue": "train"},
                      "workers.training.*": {"queue": "control"}, "workers.generation.*": {"queue": "generate"},
                      "workers.proxy_checks.*": {"queue": "control"}, "workers.notifications.*": {"queue": "control"}}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-work": {"task": "workers.tasks.reap_stale_work", "schedule": float(envint("LTS_REAPER_INTERVAL_S", 15, minimum=1))},
    "reap-training": {"task": "workers.training.reap_training", "schedule": float(envint("LTS_REAPER_INTERVAL_S", 15, minimum=1))},
    "reap-proxy-checks": {"task": "workers.proxy_checks.reap_proxy_checks", "schedule": float(envint("LTS_REAPER_INTERVAL_S", 15, minimum=1))},
    "reap-deliveries": {"task": "workers.notifications.reap_deliveries", "schedule": float(envint("LTS_REAPER_INTERVAL_S", 15, minimum=1))},
}
# The queues the routes above send to, each consumed by a worker (docker-compose.yml, workers/stack.py); profiling
# queues come on top, one per device: profile.<device-name> (searches.models.profile_queue).
LTS_QUEUES = ("control", "train", "generate")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Bounded pages (limit 1 to 1000) and JSON without NUL, lone surrogates or nesting beyond 64 levels: 400s.
    "DEFAULT_PAGINATION_CLASS": "lts_web.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # Per-user rates of the requests that start work (lts_web/throttling.py; settings "Hardening" below).
    "DEFAULT_THROTTLE_RATES": {
        "start_work": envrate("LTS_RATE_START_WORK", "100/hour"),
        "generate": envrate("LTS_RATE_GENERATE", "60/min"),
        "predict": envrate("LTS_RATE_PREDICT", "120/min"),
        "token": envrate("LTS_RATE_TOKEN", "60/hour"),  # new API tokens per client address
    },
    "DEFAULT_PARSER_CLASSES": ["lts_web.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    # A service's Conflict answers 409, a ConfigError 400 with its field messages (lts_web/errors.py).
    "EXCEPTION_HANDLER": "lts_web.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LTS Studio API",
    "DESCRIPTION": "Lightweight Transformer Search: search jobs, candidates, measurements, devices and models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Training runs and search jobs share status names (queued, running, ...) but not all of them.
    "ENUM_NAME_OVERRIDES": {"TrainingRunStatusEnum": "models_zoo.models.TrainingRun.Status",
                            "ProxyCheckStatusEnum": "models_zoo.proxy_checks.models.ProxyCheck.Status"},
}

# --- Hardening: login lock-out, API tokens, rate limits, Content-Security-Policy ---------------------------------
# Lock-out (django-axes): LTS_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address lock that pair
# out for LTS_LOGIN_COOLOFF_S, counted from the last try (a try while locked out starts the wait again, the right
# password included). The login page then answers with a page, POST /api/v1/auth/token/ with JSON, both 429 with
# Retry-After (lts_web/throttling.py). Attempts are database rows, shared by every web process.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LTS_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=envint("LTS_LOGIN_COOLOFF_S", 900, minimum=1))
# The pair, not the address alone (a whole office behind one NAT) nor the username alone (anyone could lock anyone).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner otherwise opens the output of every manage.py command
AXES_LOCKOUT_CALLABLE = "lts_web.throttling.lockout_response"
# API tokens (django-rest-knox): stored as SHA-512 digests, valid LTS_TOKEN_TTL_DAYS from their issue, sent as
# `Authorization: Token <key>`. POST /api/v1/auth/token/ gives a script one; /account/ gives a person one (shown once).
# Logging out of the pages revokes all the user's tokens; POST /api/v1/auth/logout/ the one it is sent with,
# /api/v1/auth/logoutall/ all of them.
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=envint("LTS_TOKEN_TTL_DAYS", 30, minimum=1)),
    "AUTH_HEADER_PREFIX": "Token",
}
# Rate limits: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] above (LTS_RATE_START_WORK: creating, cloning or retrying a
# search, a training run, a proxy check, a dataset or an import, through the API or a page's form; LTS_RATE_GENERATE:
# generations; LTS_RATE_PREDICT: cost-model predictions). Counted per user in the shared cache (Redis), so every web
# process sees the same count.
# Content-Security-Policy (django-csp): scripts only from this site or inline with the request's nonce
# ({{ request.csp_nonce }}); no other host for anything (the API docs use drf-spectacular-sidecar's copies).
# 'unsafe-inline' styles: Plotly.js and Redoc insert <style> elements. blob: workers: Redoc's search index.
# 'unsafe-eval' only on a search's page (searches/views.py search_detail): its WebGL charts compile code with regl.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _csp.NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# HTTPS hardening whenever DEBUG is off, except on `make run`'s plain HTTP (LTS_LOCAL_HTTP). Behind a TLS-terminating
# proxy set SECURE_PROXY_SSL_HEADER_NAME.
if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and not LTS_LOCAL_HTTP:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' preload list is hard to undo: the domain owner opts in, we don't by default.
        SILENCED_SYSTEM_CHECKS += ["security.W021"]
    _proxy_header = envstr("SECURE_PROXY_SSL_HEADER_NAME")
    if _proxy_header:
        SECURE_PROXY_SSL_HEADER = (_proxy_header, "https")
    # Health probes come from load balancers over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# Health checks wait at most this long for each dependency.
LTS_HEALTH_TIMEOUT_S = envfloat("LTS_HEALTH_TIMEOUT_S", 2.0, minimum=0.1)
