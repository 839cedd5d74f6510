"""Django settings: everything comes from the environment (see the README's configuration table)."""

from __future__ import annotations

import secrets
from pathlib import Path

from vajracast.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_seconds,
    env_str,
    env_token,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = env_path("VAJRACAST_DATA_DIR", BASE_DIR / "data")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    # Generated once and kept, so sessions survive restarts of the embedded default.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50), encoding="utf-8")
    return key_file.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The address encoders are told to send to. Unset: the host name the operator used to open the UI.
VAJRACAST_PUBLIC_HOST = env_str("VAJRACAST_PUBLIC_HOST")
# This worker's node: its name (default: the host name), the ports it may bind, its capacity.
VAJRACAST_NODE_NAME = env_str("VAJRACAST_NODE_NAME")
VAJRACAST_PORT_MIN = env_int("VAJRACAST_PORT_MIN", 9000, minimum=1, maximum=65535)
VAJRACAST_PORT_MAX = env_int("VAJRACAST_PORT_MAX", 9100, minimum=1, maximum=65535)
VAJRACAST_MAX_ROUTES = env_int("VAJRACAST_MAX_ROUTES", 64, minimum=1, maximum=1000)
# Webhooks: the waits before each retry of a failed delivery (it fails for good after the last),
# the time a receiver has to answer, and how often due retries are sent.
VAJRACAST_WEBHOOK_RETRY_S = env_seconds("VAJRACAST_WEBHOOK_RETRY_S", [5, 30, 120, 600, 3600])
VAJRACAST_WEBHOOK_TIMEOUT_S = env_int("VAJRACAST_WEBHOOK_TIMEOUT_S", 5, minimum=1, maximum=30)
VAJRACAST_WEBHOOK_SWEEP_S = env_int("VAJRACAST_WEBHOOK_SWEEP_S", 5, minimum=1, maximum=600)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_prometheus",
    "routes",
]

MIDDLEWARE = [
    # First and last: a request is timed and counted around everything else.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "vajracast.urls"
WSGI_APPLICATION = "vajracast.wsgi.application"

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
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url) if _database_url else sqlite_database(DATA_DIR / "vajracast.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Runtime state (what is running, stats, leases) lives in Redis when REDIS_URL is set; the embedded
# default keeps it in files under the data dir so web and worker processes still share it.
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "runtime": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "vajracast"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "runtime")}
    ),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ui-route-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("VAJRACAST_STATIC_ROOT", DATA_DIR / "static")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The bearer scheme goes first so an anonymous API call gets 401 with WWW-Authenticate.
        "routes.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["routes.api.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "routes.api.exceptions.json_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vajra Cast API",
    "DESCRIPTION": "Routes, inputs, outputs and their live state.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "InputProtocolEnum": "routes.choices.InputProtocol",
        "OutputProtocolEnum": "routes.choices.OutputProtocol",
        "SrtModeEnum": "routes.choices.SrtMode",
        "RoleEnum": "routes.choices.Role",
    },
}

# Celery. Without CELERY_BROKER_URL the broker is a folder in the data dir: the same task code as
# production, with no server to run.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_broker_dir = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # How often the worker looks for new messages: starting a route waits at most this long.
        "polling_interval": 0.1,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pipelines are threads that spend their time in libsrt (which releases the GIL); a route's task
# lives as long as the route runs, so the pool is sized to the node's capacity plus room for the
# short control tasks.
CELERY_WORKER_POOL = "threads"
CELERY_WORKER_CONCURRENCY = VAJRACAST_MAX_ROUTES + 4
# Acknowledge on receipt: a redelivered pipeline message would start a second copy of a route.
CELERY_TASK_ACKS_LATE = False
CELERY_BEAT_SCHEDULE = {
    "reconcile-routes": {"task": "routes.reconcile", "schedule": 2.0, "options": {"expires": 2.0}},
    "sweep-webhooks": {
        "task": "routes.sweep_webhooks",
        "schedule": float(VAJRACAST_WEBHOOK_SWEEP_S),
        "options": {"expires": float(VAJRACAST_WEBHOOK_SWEEP_S)},
    },
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The reconcile task runs every 2 s; its receipt and success lines would drown everything else.
    # Pipelines log their own start and end.
    "loggers": {name: {"level": "WARNING"} for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")},
}

HEALTH_CHECK_TIMEOUT_S = env_int("VAJRACAST_HEALTH_TIMEOUT_S", 2, minimum=1, maximum=30)

# /metrics: request metrics are named vajracast_django_*, like the gateway's vajracast_*. With a
# token set, a scrape must send "Authorization: Bearer <token>".
PROMETHEUS_METRIC_NAMESPACE = "vajracast"
VAJRACAST_METRICS_TOKEN = env_token("VAJRACAST_METRICS_TOKEN")
