"""Periodic work of the coordination app."""

import logging

from celery import shared_task

from incidents.models import Incident

from .services import decision_log_verify

logger = logging.getLogger(__name__)


@shared_task
def decision_logs_verify() -> dict[str, int]:
    """Verify every incident's decision chain; log loudly where one is broken."""
    checked = broken = 0
    for incident_id, reference in Incident.objects.values_list("pk", "reference").iterator():
        report = decision_log_verify(incident_id=incident_id)
        checked += 1
        if not report.intact:
            broken += 1
            logger.error(
                "decision log of %s is broken at entry %s: %s",
                reference,
                report.broken_at,
                report.reason,
            )
    return {"checked": checked, "broken": broken}


@shared_task
def audit_log_verify_task() -> dict[str, int | bool]:
    """Verify the audit log's chain nightly; log loudly where it is broken."""
    from .audit import audit_log_verify

    report = audit_log_verify()
    if not report.intact:
        logger.error("audit log is broken at entry %s: %s", report.broken_at, report.reason)
    else:
        # Kept by the log collector, outside the database: an anchor a rewrite cannot reach.
        logger.info("audit log intact: %s entries, last hash %s", report.entries, report.last_hash)
    return {"entries": report.entries, "intact": report.intact}


@shared_task
def lesson_reminders() -> dict[str, int]:
    """Remind owners of lessons due soon or overdue (safe to run twice: each reminder is claimed
    once per lesson, kind and day)."""
    from .lessons import lesson_reminders_send

    return lesson_reminders_send()
