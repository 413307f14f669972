"""The security audit log: one append-only, hash-chained record of who did what, from where.

``audit_record`` writes one entry; ``audit_read`` writes one per RED or AMBER+STRICT item a person
was shown. Both are called from the edges (views, the API's exception handler, the framework's
authentication hooks) and from services (marking changes, MFA).

The chain is one for the whole platform, not one per city. Entries without a city belong in it
too (a failed login for a name nobody holds, a platform superuser's actions), a single chain is
verified in one pass, and the audit write rate (logins, refusals, restricted reads) is far below
what one row lock serialises. Administrators still see only their city's entries: visibility is
the queryset's job (``AuditEntry.objects.visible_to``), not the chain's.

Durability against the caller's rollback: an entry must survive the request that caused it
failing. When the caller holds no transaction, the entry is written in its own transaction on the
ordinary connection and is committed before ``audit_record`` returns. When the caller is inside a
transaction (a service's ``transaction.atomic``), writing there would tie the entry to the
caller's fate, so the entry is written on a short-lived connection of its own (an autonomous
transaction) and committed at once. That connection's references to people and agencies carry no
foreign-key constraint, so it never waits on rows the caller has not committed yet; and since the
ordinary connection never holds the chain lock beyond its own short transaction, the two can never
wait on each other. On SQLite (the embedded default, one writer at a time) a second connection
would wait on the caller's write lock, so there the entry joins the caller's transaction.
"""

import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.utils import load_backend
from django.utils import timezone

from .markings import Marking
from .models import GENESIS_HASH, AuditChainHead, AuditEntry

logger = logging.getLogger(__name__)

# The connection alias of the autonomous transaction; it exists only while an entry is written.
AUDIT_ALIAS = "audit"

# Reads of these markings are audited (invariant 4).
RESTRICTED_MARKINGS = frozenset({Marking.RED.value, Marking.AMBER_STRICT.value})

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$|^(export|import)$")

USER_AGENT_MAX = AuditEntry._meta.get_field("user_agent").max_length or 256
USERNAME_MAX = AuditEntry._meta.get_field("username").max_length or 150
LABEL_MAX = AuditEntry._meta.get_field("target_label").max_length or 200


def audit_record(
    *,
    action: str,
    user=None,
    username: str = "",
    request=None,
    target=None,
    detail: dict | None = None,
) -> None:
    """Append one entry to the audit log, committed before this returns.

    ``user`` defaults to the request's signed-in user; ``username`` names who was meant when there
    is no user (a failed login). ``target`` is the model instance acted on, if any. A database
    failure is logged, never raised: the audit log must not turn a refusal into a 500. A malformed
    call (unknown action shape, a detail that is not a dict of JSON values) raises.
    """
    entry = _entry(
        action=action, user=user, username=username, request=request, target=target, detail=detail
    )
    _append([entry])


def audit_read(*, user, request=None, items: Iterable[Any]) -> None:
    """Record that ``user`` was shown each RED or AMBER+STRICT item of ``items`` (one entry each).

    Items of other markings are not recorded. All entries of one call are written together.
    """
    entries = [
        _entry(
            action="read.restricted",
            user=user,
            request=request,
            target=item,
            detail={"marking": item.marking},
        )
        for item in items
        if getattr(item, "marking", None) in RESTRICTED_MARKINGS
    ]
    _append(entries)


# --- building an entry ---------------------------------------------------------------------------


def _entry(
    *,
    action: str,
    user=None,
    username: str = "",
    request=None,
    target=None,
    detail: dict | None = None,
) -> AuditEntry:
    if not isinstance(action, str) or not ACTION_PATTERN.match(action):
        raise ValueError(f"Audit action {action!r} is not a dotted lower-case name.")
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise TypeError("Audit detail must be a dict.")
    # Stored exactly as hashed: JSON values only (dates and UUIDs become strings here).
    detail = json.loads(json.dumps(detail, cls=DjangoJSONEncoder))

    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    entry = AuditEntry(action=action, detail=detail)
    if user is not None:
        entry.user_id = user.pk
        entry.username = (user.get_username() or username)[:USERNAME_MAX]
        entry.agency_id = user.agency_id
        entry.city_id = user.agency.city_id if user.agency_id else None
    else:
        entry.username = (username or "")[:USERNAME_MAX]
    if request is not None:
        meta = getattr(request, "META", {})
        entry.ip_address = client_ip(meta)
        entry.user_agent = str(meta.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX]
    if target is not None:
        if not isinstance(target, models.Model):
            raise TypeError("Audit target must be a model instance.")
        entry.target_type = target._meta.label_lower
        entry.target_id = str(target.pk)[:64]
        entry.target_label = target_label(target)[:LABEL_MAX]
    return entry


def target_label(target: models.Model) -> str:
    """How the log names its target. An item carrying a handling marking is named by its kind
    and id, never by its content (a timeline entry's text, an action's title): the log is read
    by administrators who may not be named on a RED or AMBER+STRICT item, and a marking raised
    later could not take back a label already written."""
    if any(field.name == "marking" for field in target._meta.get_fields()):
        return f"{target._meta.verbose_name} {target.pk}"
    return str(target)


def client_ip(meta: dict) -> str | None:
    """The client's address: REMOTE_ADDR, or, behind ``AUDIT_TRUSTED_PROXY_COUNT`` proxies of our
    own, the address the outermost of them saw. Anything unparsable is recorded as unknown."""
    candidate = meta.get("REMOTE_ADDR", "")
    proxies = settings.AUDIT_TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


# --- appending to the chain ----------------------------------------------------------------------


def _append(entries: list[AuditEntry]) -> None:
    if not entries:
        return
    try:
        if _caller_transaction_open():
            with _autonomous_connection() as alias:
                _write(entries, using=alias)
        else:
            _write(entries, using=DEFAULT_DB_ALIAS)
    except DatabaseError:
        logger.exception(
            "audit log: could not record %s", ", ".join(entry.action for entry in entries)
        )


def _caller_transaction_open() -> bool:
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return False
    return connection.in_atomic_block or not connection.get_autocommit()


@contextlib.contextmanager
def _autonomous_connection() -> Iterator[str]:
    """A fresh connection to the same database, under ``AUDIT_ALIAS``, for one transaction."""
    settings_dict = dict(connections[DEFAULT_DB_ALIAS].settings_dict)
    backend = load_backend(settings_dict["ENGINE"])
    connection = backend.DatabaseWrapper(settings_dict, AUDIT_ALIAS)
    connections[AUDIT_ALIAS] = connection
    try:
        yield AUDIT_ALIAS
    finally:
        try:
            connection.close()
        finally:
            del connections[AUDIT_ALIAS]


def _write(entries: list[AuditEntry], *, using: str) -> None:
    with transaction.atomic(using=using):
        head = _head_locked(using)
        for entry in entries:
            # Stamped under the lock, so time never runs backwards along the chain.
            entry.at = timezone.now()
            entry.sequence = head.last_sequence + 1
            entry.prev_hash = head.last_hash
            entry.entry_hash = entry.compute_hash()
            entry.save(using=using, force_insert=True)
            head.last_sequence = entry.sequence
            head.last_hash = entry.entry_hash
        head.save(using=using, update_fields=["last_sequence", "last_hash"])


def _head_locked(using: str) -> AuditChainHead:
    """The chain's head row, locked until the transaction ends (created on first use)."""
    heads = AuditChainHead.objects.using(using).select_for_update()
    head = heads.filter(pk=1).first()
    if head is None:
        # Two first writers may race here: ignoring the conflict (ON CONFLICT DO NOTHING) lets
        # the second wait for the first's row, then lock it like everybody else.
        AuditChainHead.objects.using(using).bulk_create(
            [AuditChainHead(pk=1, last_sequence=0, last_hash=GENESIS_HASH)], ignore_conflicts=True
        )
        head = heads.get(pk=1)
    return head


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditChainReport:
    """The result of checking the audit log's chain."""

    intact: bool
    entries: int
    broken_at: int | None = None  # sequence number of the first entry that fails
    broken_id: int | None = None
    reason: str = ""
    last_hash: str = GENESIS_HASH


def audit_log_verify() -> AuditChainReport:
    """Recompute every hash of the audit log and report the first entry that does not fit.

    The head row is read first: entries appended while the check runs come after it and are left
    for the next check. Comparing the head with the last entry catches the removal of the newest
    entries, which no link would reveal; the head only moves forward (a trigger), and one wound
    back behind the triggers' back no longer agrees with the newest entry.
    """
    # Head and newest entry in one statement, hence one snapshot: they are committed together, so
    # they must agree; an entry beyond the head is one the head was wound back to hide.
    newest = AuditEntry.objects.order_by("-sequence").values("sequence")[:1]
    head = (
        AuditChainHead.objects.filter(pk=1)
        .annotate(newest=models.Subquery(newest))
        .values("last_sequence", "last_hash", "newest")
        .first()
    )
    if head is None:
        if AuditEntry.objects.exists():
            return AuditChainReport(
                intact=False, entries=0, reason="the chain head is missing but entries exist"
            )
        return AuditChainReport(intact=True, entries=0)
    head_sequence, head_hash = head["last_sequence"], head["last_hash"]
    if (head["newest"] or 0) > head_sequence:
        return AuditChainReport(
            intact=False,
            entries=0,
            broken_at=head_sequence + 1,
            reason=f"entries after {head_sequence} exist but the chain head stops there",
        )
    expected_prev = GENESIS_HASH
    count = 0
    entries = AuditEntry.objects.filter(sequence__lte=head_sequence).order_by("sequence")

    def broken(sequence: int | None, pk: int | None, number: int, problem: str):
        return AuditChainReport(
            intact=False,
            entries=number,
            broken_at=sequence,
            broken_id=pk,
            reason=problem,
            last_hash=expected_prev,
        )

    for count, entry in enumerate(entries.iterator(chunk_size=2000), start=1):
        problem = ""
        if entry.sequence != count:
            problem = f"entry {count} is missing: the next entry is numbered {entry.sequence}"
        elif entry.prev_hash != expected_prev:
            problem = "its link to the previous entry does not match that entry's hash"
        elif entry.compute_hash() != entry.entry_hash:
            problem = "its content no longer matches its hash: it was changed after recording"
        if problem:
            return broken(entry.sequence, entry.pk, count, problem)
        expected_prev = entry.entry_hash
    if count != head_sequence or expected_prev != head_hash:
        return broken(
            count + 1,
            None,
            count,
            f"the log ends at entry {count} but entry {head_sequence} was the last recorded",
        )
    return AuditChainReport(intact=True, entries=count, last_hash=expected_prev)


# --- the framework's authentication hooks --------------------------------------------------------
# Connected in ``CoordinationConfig.ready``. These are Django's own authentication signals, the
# only place every login path (pages, admin, API token, test client) passes through; they record
# what happened and write no domain data, so the rule against post_save signals does not apply.


def on_user_logged_in(sender, request=None, user=None, **kwargs) -> None:
    audit_record(action="auth.login", user=user, request=request)


def on_user_login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    from django.contrib.auth import get_user_model

    credentials = credentials or {}
    User = get_user_model()
    name = str(credentials.get(User.USERNAME_FIELD, "") or credentials.get("username", ""))
    # Attributed to the person whose name was tried, so their city's administrators see attacks
    # on their people; an unknown name stays a bare name.
    known = User._default_manager.filter(**{User.USERNAME_FIELD: name}).first() if name else None
    entry = _entry(action="auth.login_failed", username=name, request=request)
    if known is not None:
        entry.user_id = known.pk
        entry.agency_id = known.agency_id
        entry.city_id = known.agency.city_id if known.agency_id else None
    _append([entry])


def on_user_logged_out(sender, request=None, user=None, **kwargs) -> None:
    if user is None:  # nobody was signed in: nothing happened worth recording
        return
    audit_record(action="auth.logout", user=user, request=request)
