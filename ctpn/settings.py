"""Settings for every environment, read from environment variables.

With no variables at all the platform runs on its *embedded default*: SQLite in a local data
folder and the local Redis that ``make run`` starts. ``CTPN_ENV=production`` turns on the checks a
real deployment must pass and refuses to start without what it needs.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when CTPN_ENV=production")
    return value


CTPN_ENV = env_str("CTPN_ENV", "embedded")
if CTPN_ENV not in {"embedded", "production"}:
    raise ImproperlyConfigured(f"CTPN_ENV must be 'embedded' or 'production', not {CTPN_ENV!r}")
PRODUCTION = CTPN_ENV == "production"

DATA_DIR = Path(env_str("CTPN_DATA_DIR", str(BASE_DIR / "var")))

if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when CTPN_ENV=production")
    DATABASE_URL = env_required("DATABASE_URL")
    REDIS_URL = env_required("REDIS_URL")
else:
    # Only good for a machine nobody else reaches; production refuses to start without its own.
    SECRET_KEY = env_str("SECRET_KEY", "embedded-default-not-secret-" + "x" * 32)
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
    DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'ctpn.sqlite3'}")
    # The local Redis that `make run` starts next to the web server, worker and beat.
    REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:56380/0")

DEBUG = env_bool("DEBUG", not PRODUCTION)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "ctpn.adminsite.VerifiedAdminConfig",  # the Django admin, for verified sessions only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "ctpn",
    "coordination",
    "incidents",
    "comms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "coordination.mfa.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "ctpn.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ctpn.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes requires: it turns a lockout found during sign-in into the answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ctpn.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "ctpn.asgi.application"

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
                # Every page can show the "alerting degraded" banner.
                "comms.context_processors.alerting",
            ],
        },
    },
]

# Seconds a database connection is kept for the next task or WebSocket call. HTTP requests under
# the ASGI server close theirs when they finish (ctpn/asgi.py says why).
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=DATABASE_CONN_MAX_AGE)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, plus the reuse of finished HTTP requests' connections in the ASGI server.
    DATABASES["default"]["ENGINE"] = "ctpn.db"
# Idle connections an ASGI server process keeps for its next HTTP requests (``ctpn.db.base``).
DATABASE_IDLE_CONNECTIONS = env_int("DATABASE_IDLE_CONNECTIONS", 8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so the web server and the worker queue for it
        # instead of failing with "database is locked" when a read transaction tries to upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "coordination.User"
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "ctpn.security.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"  # invariant 5: UTC in storage and the API; pages convert to the city's zone
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Front-end libraries installed from the npm registry by scripts/venv.sh (never copied by hand).
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/leaflet", NODE_MODULES / "leaflet" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The embedded default serves static files straight from the apps, with no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root on every start

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Pages -------------------------------------------------------------------------------------
# Map tiles of the dashboard's incident map, as a Leaflet URL template. Set it to the city's own
# tile server where the public one must not see which places are being looked at; an empty value
# means no tile layer at all (the location is always given in text as well).
MAP_TILE_URL = os.environ.get(
    "CTPN_MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
).strip()
MAP_TILE_ATTRIBUTION = env_str("CTPN_MAP_TILE_ATTRIBUTION", "&copy; OpenStreetMap contributors")
# Incidents per page of the incident list.
INCIDENT_LIST_PAGE_SIZE = env_int("CTPN_INCIDENT_LIST_PAGE_SIZE", 50)

# --- Live updates (Channels) -------------------------------------------------------------------
# No channel layer: publishers call ctpn.realtime.publish (one Redis PUBLISH), and each web process
# holds one subscription and writes to its own sockets (comms/fanout.py). See comms/consumers.py
# for the messages clients receive.
CHANNEL_LAYERS: dict[str, dict] = {}
# How long a publisher waits for Redis before giving up (clients replay what was not published).
LIVE_PUBLISH_TIMEOUT_SECONDS = env_int("LIVE_PUBLISH_TIMEOUT_SECONDS", 2)
# How long a connecting client waits for its process's subscription before being told to retry.
LIVE_SUBSCRIBE_TIMEOUT_SECONDS = env_int("LIVE_SUBSCRIBE_TIMEOUT_SECONDS", 5)
# A connection with more unsent bytes than this has stopped reading: it is cut off.
LIVE_SEND_BUFFER_LIMIT_BYTES = env_int("LIVE_SEND_BUFFER_LIMIT_BYTES", 1024 * 1024)
# Presence of a connection whose process died without closing it lasts at most this long.
LIVE_PRESENCE_TTL_SECONDS = env_int("LIVE_PRESENCE_TTL_SECONDS", 45)
# At most one presence list per incident per process per this interval (coalesces storms).
LIVE_PRESENCE_BROADCAST_INTERVAL_MS = env_int("LIVE_PRESENCE_BROADCAST_INTERVAL_MS", 500)
# An open connection's session and access are checked again this often (0: never).
LIVE_REVALIDATE_SECONDS = env_int("LIVE_REVALIDATE_SECONDS", 60)

# --- Background work (Celery) ------------------------------------------------------------------
# The broker may live in its own Redis database (the tests use one, so that messages left by
# another run are never consumed by this one's worker).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# Celery beat's usual scheduler, also writing beat's heartbeat for the alerting watchdog.
CELERY_BEAT_SCHEDULER = "ctpn.celery:HeartbeatScheduler"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Exercises: beat releases this often any due inject whose own task a lost worker held.
EXERCISE_SWEEP_SECONDS = env_int("EXERCISE_SWEEP_SECONDS", 2)
# Alerting has two queues, each with its own worker process: deliveries (many, each a network
# round trip) on "delivery", escalation steps and the sweep on "escalation", so that a step due
# now never waits behind an activation's hundreds of e-mails. Everything else stays on "celery",
# which the delivery worker also consumes.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "comms.tasks.notification_deliver": {"queue": "delivery"},
    "comms.tasks.notifications_deliver": {"queue": "delivery"},
    "comms.tasks.escalation_step": {"queue": "escalation"},
    "comms.tasks.alerts_sweep": {"queue": "escalation"},
}
CELERY_BEAT_SCHEDULE = {
    "exercise-sweep": {
        "task": "comms.tasks.exercise_sweep",
        "schedule": float(EXERCISE_SWEEP_SECONDS),
        "options": {"expires": float(EXERCISE_SWEEP_SECONDS)},
    },
    # Tamper evidence is only worth something if somebody looks: verify every chain nightly.
    "verify-decision-logs": {
        "task": "coordination.tasks.decision_logs_verify",
        "schedule": crontab(hour=3, minute=17),
    },
    "verify-audit-log": {
        "task": "coordination.tasks.audit_log_verify_task",
        "schedule": crontab(hour=3, minute=37),
    },
    # Hourly; each lesson gets at most one reminder of each kind a day whatever the schedule.
    "lesson-reminders": {
        "task": "coordination.tasks.lesson_reminders",
        "schedule": crontab(minute=11),
    },
}

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a bad token then answers 401 with WWW-Authenticate, not a bare 403.
        "ctpn.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ctpn.permissions.DeclaredPermission"],
    "DEFAULT_PAGINATION_CLASS": "ctpn.api.PageNumberPagination",
    # Rates are in the Security section at the end.
    "DEFAULT_THROTTLE_CLASSES": [
        "ctpn.throttling.AnonRateThrottle",
        "ctpn.throttling.UserRateThrottle",
        "ctpn.throttling.ScopedRateThrottle",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["ctpn.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ctpn.api.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CTPN coordination API",
    "DESCRIPTION": (
        "Incidents, M/ETHANE reports, the JESIP joint decision log, actions, timeline and the "
        "incident event stream. Every list is filtered by the caller's need to know."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "IncidentTypeEnum": "incidents.models.IncidentType",
        "ActionStatusEnum": "coordination.models.ActionStatus",
        "AgencyTypeEnum": "coordination.models.AgencyType",
        "StanceEnum": "coordination.models.Stance",
        "ActivationStatusEnum": "comms.models.ActivationStatus",
        "LessonStatusEnum": "coordination.models.LessonStatus",
        "LessonSourceEnum": "coordination.models.LessonSource",
        "DebriefStatusEnum": "coordination.models.DebriefStatus",
        "ObservationCategoryEnum": "coordination.models.ObservationCategory",
        "TimelineCategoryEnum": "incidents.models.TimelineCategory",
        "MeetingStatusEnum": "coordination.models.MeetingStatus",
        "AttendanceEnum": "coordination.models.Attendance",
        "OpenMarkingEnum": "comms.models.STATEMENT_MARKINGS",
        "MarkingEnum": "coordination.markings.Marking",
        "IncidentLevelEnum": "incidents.models.IncidentLevel",
        "ContactKindEnum": "comms.models.ContactKind",
        "InjectKindEnum": "comms.models.InjectKind",
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# --- Authentication ----------------------------------------------------------------------------
# A second factor (an authenticator app, TOTP; one-time backup codes as the fallback) is required
# of strategic and neutral commanders, administrators and superusers; with this on, of everyone.
# Who must have one and has none is sent to enrolment right after the password.
MFA_REQUIRED_FOR_ALL = env_bool("CTPN_MFA_REQUIRED_FOR_ALL", False)
# The name authenticator apps show next to the code.
OTP_TOTP_ISSUER = env_str("CTPN_MFA_ISSUER", "CTPN")
# Backup codes given at enrolment (each works once); regenerating replaces them all.
MFA_BACKUP_CODE_COUNT = env_int("CTPN_MFA_BACKUP_CODE_COUNT", 10)
# Administrators reset a lost second factor by deleting the person's devices in the admin; they
# never see a secret or a backup code there.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Domain ------------------------------------------------------------------------------------
# JESIP logging: a decision logged this long after it was taken must say why.
DECISION_LATE_ENTRY_MINUTES = env_int("DECISION_LATE_ENTRY_MINUTES", 15)

# --- audit log ---------------------------------------------------------------------------------
# How many reverse proxies of our own stand in front of the web processes. 0: the client address
# is REMOTE_ADDR. N: it is the N-th address from the right of X-Forwarded-For, the one the outermost
# of our proxies saw (anything further left is whatever the client chose to send).
AUDIT_TRUSTED_PROXY_COUNT = env_int("AUDIT_TRUSTED_PROXY_COUNT", 0)
AUDIT_PAGE_SIZE = env_int("CTPN_AUDIT_PAGE_SIZE", 50)
# A refused cross-site request is a refusal like any other: recorded, then Django's usual page.
CSRF_FAILURE_VIEW = "coordination.views.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if PRODUCTION:
    # Shared by every web process: throttling counts and the alerting banner's cache.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }

# --- Alerting ----------------------------------------------------------------------------------
# Webhook contact methods use https. Plain http is accepted only to a loopback host, and only
# where this is on (the embedded default and the test suite), so a local receiver can be tested.
ALERTING_WEBHOOK_HTTP_LOOPBACK = env_bool("ALERTING_WEBHOOK_HTTP_LOOPBACK", not PRODUCTION)
# The window a rota's calendar feed covers, in days before and after today.
ROTA_CALENDAR_PAST_DAYS = env_int("ROTA_CALENDAR_PAST_DAYS", 7)
ROTA_CALENDAR_FUTURE_DAYS = env_int("ROTA_CALENDAR_FUTURE_DAYS", 60)

# Activation alerts: e-mail, SMS, signed webhooks and in-app pushes, sent by the Celery worker and
# re-driven by a beat sweep. Every value below has a default that works on the embedded default.

# Where the one-tap acknowledgement links in e-mails and SMS point.
PUBLIC_BASE_URL = env_str(
    "PUBLIC_BASE_URL",
    f"https://{ALLOWED_HOSTS[0]}" if PRODUCTION else "http://127.0.0.1:8000",
).rstrip("/")

# E-mail through SMTP when EMAIL_HOST is set; otherwise printed to the console.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "CTPN alerts <alerts@ctpn.invalid>")

# SMS through a JSON-over-HTTP provider, or "console" to print them (the embedded default).
SMS_PROVIDER_URL = env_str("SMS_PROVIDER_URL", "console")
SMS_PROVIDER_TOKEN = env_str("SMS_PROVIDER_TOKEN", "")
if SMS_PROVIDER_URL != "console" and not SMS_PROVIDER_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("SMS_PROVIDER_URL must be console or an http(s) URL")
ALERT_HTTP_TIMEOUT_SECONDS = env_int("ALERT_HTTP_TIMEOUT_SECONDS", 10)

# How long a one-tap acknowledgement link works.
ALERT_ACK_LINK_MAX_AGE_SECONDS = env_int("ALERT_ACK_LINK_MAX_AGE_SECONDS", 24 * 3600)
# A worker holds a notification this long while sending it; a worker that dies leaves it to be
# taken again after that. Longer than any channel's timeout, so a slow send is not duplicated.
ALERT_LEASE_SECONDS = env_int("ALERT_LEASE_SECONDS", 60)
# The beat sweep runs this often; it re-drives a queued notification nobody took within the grace
# and takes escalation steps that are due (a step whose worker died fires at most this much late,
# plus the time a new escalation worker takes to start).
ALERT_SWEEP_SECONDS = env_int("ALERT_SWEEP_SECONDS", 2)
ALERT_SWEEP_GRACE_SECONDS = env_int("ALERT_SWEEP_GRACE_SECONDS", 15)
# A worker publishes the delivery changes of one activation's board at most this often (0: after
# every send).
ALERT_BOARD_COALESCE_MS = env_int("ALERT_BOARD_COALESCE_MS", 250)
# The notifications created together (an activation, an escalation step) are sent by tasks of up
# to this many each.
ALERT_DELIVERY_BATCH = env_int("ALERT_DELIVERY_BATCH", 20)
# Transient failures are retried with growing pauses; after this many tries a notification fails.
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 8)
# Watchdog: the worker and beat write a heartbeat this often; silence longer than the threshold
# shows the "alerting degraded" banner and makes /health/ answer 503.
ALERT_HEARTBEAT_SECONDS = env_int("ALERT_HEARTBEAT_SECONDS", 5)
ALERT_HEARTBEAT_STALE_SECONDS = env_int("ALERT_HEARTBEAT_STALE_SECONDS", 60)
if max(ALERT_HTTP_TIMEOUT_SECONDS, EMAIL_TIMEOUT) >= ALERT_LEASE_SECONDS:
    raise ImproperlyConfigured(
        "ALERT_LEASE_SECONDS must be longer than ALERT_HTTP_TIMEOUT_SECONDS and EMAIL_TIMEOUT"
    )
if ALERT_HEARTBEAT_STALE_SECONDS <= ALERT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "ALERT_HEARTBEAT_STALE_SECONDS must be longer than ALERT_HEARTBEAT_SECONDS"
    )

# --- Lessons -----------------------------------------------------------------------------------
# Owners are reminded of a lesson this many days before it is due (and daily once overdue).
LESSON_REMINDER_DUE_SOON_DAYS = env_int("LESSON_REMINDER_DUE_SOON_DAYS", 7)
# Names this deployment in the lesson exchange documents it exports.
CTPN_DEPLOYMENT_NAME = env_str("CTPN_DEPLOYMENT_NAME", "CTPN")

# --- Security ----------------------------------------------------------------------------------
# How many reverse proxies (load balancers) stand in front of the web processes. With none, the
# client is the connection's peer; with N, the N-th address from the right of X-Forwarded-For.
# Lockouts and throttling count per client address, so behind a proxy this must be set, or every
# client looks like the proxy.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Brute force: after LOGIN_FAILURE_LIMIT failed sign-ins with one username from one address, that
# pair is refused for LOGIN_LOCKOUT_MINUTES on every sign-in path (page, admin, API token), and a
# refused attempt does not extend the lock. Per pair and not per username alone: otherwise anybody
# could lock a commander out of the platform in the middle of an incident by typing their name.
AXES_ENABLED = env_bool("LOGIN_LOCKOUT_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "ctpn.security.lockout_response"
AXES_USERNAME_CALLABLE = "ctpn.security.lockout_username"
AXES_HTTP_RESPONSE_CODE = 429
AXES_SENSITIVE_PARAMETERS = ["password", "otp_token", "token"]
AXES_VERBOSE = False
AXES_IPWARE_META_PRECEDENCE_ORDER: tuple[str, ...] = ("REMOTE_ADDR",)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT must be at least 1")

# API throttling, per client address for anonymous callers and per person once signed in; the
# token endpoint has its own strict rate. A refusal is 429 with Retry-After. Rates are DRF's
# "<count>/<second|minute|hour|day>".
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT or None
API_THROTTLE_RATES = {
    "anon": env_str("API_THROTTLE_ANON", "60/minute"),
    "user": env_str("API_THROTTLE_USER", "1200/minute"),
    "auth-token": env_str("API_THROTTLE_AUTH_TOKEN", "10/minute"),
    # The SMS provider posts a receipt per message, in bursts after a large activation.
    "sms-receipts": env_str("API_THROTTLE_SMS_RECEIPTS", "6000/minute"),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = API_THROTTLE_RATES
for _scope, _rate in API_THROTTLE_RATES.items():
    _count, _, _period = _rate.partition("/")
    if not _count.isdigit() or _period not in {"second", "minute", "hour", "day"}:
        raise ImproperlyConfigured(
            f"The {_scope!r} API rate must be like 60/minute (second, minute, hour or day), "
            f"not {_rate!r}"
        )

# Sessions end after SESSION_IDLE_TIMEOUT_SECONDS without a request, and at the latest
# SESSION_ABSOLUTE_TIMEOUT_SECONDS after sign-in (ctpn.middleware.SessionTimeoutMiddleware).
SESSION_IDLE_TIMEOUT_SECONDS = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 30 * 60)
SESSION_ABSOLUTE_TIMEOUT_SECONDS = env_int("SESSION_ABSOLUTE_TIMEOUT_SECONDS", 12 * 3600)
if not 0 < SESSION_IDLE_TIMEOUT_SECONDS <= SESSION_ABSOLUTE_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT_SECONDS must be positive and at most SESSION_ABSOLUTE_TIMEOUT_SECONDS"
    )
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT_SECONDS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL template; Leaflet's ``{s}`` subdomains become ``*``."""
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# Content Security Policy: scripts and styles only from our own files, never inline; images also
# from the map's tile server. The WebSocket origin of the request's own host is added per request
# (ctpn.middleware.ContentSecurityPolicyMiddleware).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF, "data:", *filter(None, [_origin(MAP_TILE_URL)])],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    },
}

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # TLS ends at the load balancer, which says so in this header (and must strip it from clients).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
