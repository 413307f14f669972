from django.apps import AppConfig


class CtpnConfig(AppConfig):
    """The project's wiring: security hooks that belong to no single domain app."""

    name = "ctpn"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in

        from . import middleware, security

        user_locked_out.connect(security.on_user_locked_out, dispatch_uid="audit-locked-out")
        # Every sign-in, on every path, starts the session's idle and absolute clocks.
        user_logged_in.connect(middleware.session_clock_start, dispatch_uid="session-clock-start")
