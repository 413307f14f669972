"""Check the hash chain of the security audit log."""

from django.core.management.base import BaseCommand, CommandError

from coordination.audit import audit_log_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exit 1 if it is broken."

    def handle(self, *args, **options) -> None:
        report = audit_log_verify()
        if not report.intact:
            raise CommandError(
                f"audit log BROKEN at entry {report.broken_at} (id {report.broken_id}): "
                f"{report.reason}"
            )
        self.stdout.write(
            f"audit log: intact, {report.entries} entries, last hash {report.last_hash}"
        )
