from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoordinationConfig(AppConfig):
    """Cities, agencies, people, the joint decision log and actions; the security audit log."""

    name = "coordination"

    def ready(self) -> None:
        from django.contrib.auth.signals import (
            user_logged_in,
            user_logged_out,
            user_login_failed,
        )

        from . import audit
        from .db_triggers import append_only_triggers_install

        # After every migrate, not in one migration: SQLite rebuilds a table (dropping its
        # triggers) whenever a later migration alters it, so the guard is put back each time.
        post_migrate.connect(append_only_triggers_install, sender=self)

        # The framework's own authentication hooks, the one point every login path (pages, admin,
        # API token, test client) passes through. Our rule against signals is about domain
        # writes, which belong in services; these only append to the audit log.
        user_logged_in.connect(audit.on_user_logged_in, dispatch_uid="audit-login")
        user_login_failed.connect(audit.on_user_login_failed, dispatch_uid="audit-login-failed")
        user_logged_out.connect(audit.on_user_logged_out, dispatch_uid="audit-logout")
