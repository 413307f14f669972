from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoordinationConfig(AppConfig):
    """Cities, agencies, people, the joint decision log and actions."""

    name = "coordination"

    def ready(self) -> None:
        from .db_triggers import append_only_triggers_install

        # After every migrate, not in one migration: SQLite rebuilds a table (dropping its
        # triggers) whenever a later migration alters it, so the guard is put back each time.
        post_migrate.connect(append_only_triggers_install, sender=self)
