"""Check the hash chain of every incident's decision log (or one incident's)."""

from django.core.management.base import BaseCommand, CommandError

from coordination.services import decision_log_verify
from incidents.models import Incident


class Command(BaseCommand):
    help = "Verify the decision log hash chains; exit 1 if any chain is broken."

    def add_arguments(self, parser) -> None:
        parser.add_argument("reference", nargs="?", help="Incident reference, e.g. STO-2026-0001")

    def handle(self, *args, reference: str | None = None, **options) -> None:
        incidents = Incident.objects.order_by("reference")
        if reference:
            incidents = incidents.filter(reference=reference)
            if not incidents.exists():
                raise CommandError(f"No incident {reference}.")
        broken = 0
        for incident in incidents:
            report = decision_log_verify(incident_id=incident.pk)
            if report.intact:
                self.stdout.write(
                    f"{incident.reference}: intact, {report.entries} entries, "
                    f"last hash {report.last_hash}"
                )
            else:
                broken += 1
                self.stdout.write(
                    self.style.ERROR(
                        f"{incident.reference}: BROKEN at entry {report.broken_at} "
                        f"(id {report.broken_id}): {report.reason}"
                    )
                )
        if broken:
            raise CommandError(f"{broken} decision log(s) broken.")
