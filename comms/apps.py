from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommsConfig(AppConfig):
    """Live updates, activation alerts, rotas, public statements and situation briefs."""

    name = "comms"

    def ready(self) -> None:
        from .db_triggers import statement_triggers_install

        # After every migrate, as the decision log's guard (see coordination.apps).
        post_migrate.connect(statement_triggers_install, sender=self)
