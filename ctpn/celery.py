"""The Celery application. Tasks live in each app's ``tasks.py``; the schedule is in settings, and
the alerting sweep's (which runs every few seconds, as configured) is added here.

The worker and beat each write a heartbeat (see ``comms.watchdog``): the worker from a timer in its
main process (a bootstep), beat from its scheduler loop (``HeartbeatScheduler``, set as
``beat_scheduler`` in settings so a plain ``celery -A ctpn beat`` uses it).
"""

import os
import socket
from typing import Any

from celery import Celery, bootsteps
from celery.beat import PersistentScheduler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctpn.settings")

app = Celery("ctpn")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Writes the worker's heartbeat from the main process's timer, every few seconds."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry: Any = None

    def start(self, parent: Any) -> None:
        from django.conf import settings

        from comms.watchdog import heartbeat_write

        name = str(parent.hostname)

        def beat() -> None:
            heartbeat_write("worker", name)

        beat()
        self.timer_entry = parent.timer.call_repeatedly(settings.ALERT_HEARTBEAT_SECONDS, beat)

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


app.steps["worker"].add(WorkerHeartbeat)


class HeartbeatScheduler(PersistentScheduler):
    """Celery beat's usual scheduler, writing beat's heartbeat as it loops."""

    _last_heartbeat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        from django.conf import settings

        from comms.watchdog import heartbeat_write

        interval = super().tick(*args, **kwargs)
        now = self.app.now().timestamp()
        if now - self._last_heartbeat >= settings.ALERT_HEARTBEAT_SECONDS:
            heartbeat_write("beat", socket.gethostname())
            self._last_heartbeat = now
        # Never sleep past the next heartbeat, however far away the next task is.
        return min(interval, float(settings.ALERT_HEARTBEAT_SECONDS))


@app.on_after_configure.connect
def alerting_schedule(sender: Celery, **kwargs: Any) -> None:
    from django.conf import settings

    # Re-drives notifications a lost task left queued and takes escalation steps that are due.
    sender.add_periodic_task(
        float(settings.ALERT_SWEEP_SECONDS),
        sender.signature("comms.tasks.alerts_sweep"),
        name="alerting-sweep",
        expires=float(settings.ALERT_SWEEP_SECONDS),
    )
