"""Celery tasks of activation alerting. Each takes ids, calls a service, and is safe to run twice
or late: the services claim their work and drop it when it is not (or no longer) theirs.

Acknowledged late (``CELERY_TASK_ACKS_LATE``), so a task whose worker dies is not lost with it;
and if the broker loses it anyway, the beat sweep re-drives the work from the database.
"""

from celery import shared_task

from . import exercises, services


@shared_task(name="comms.tasks.notification_deliver", ignore_result=True)
def notification_deliver_task(notification_id: int) -> str:
    return services.notification_deliver(notification_id=notification_id)


@shared_task(name="comms.tasks.notifications_deliver", ignore_result=True)
def notifications_deliver_task(notification_ids: list[int]) -> dict[str, int]:
    return services.notifications_deliver(notification_ids=notification_ids)


@shared_task(name="comms.tasks.escalation_step", ignore_result=True)
def escalation_step_task(target_id: int, expected_steps: int) -> str:
    return services.escalation_advance(target_id=target_id, expected_steps=expected_steps)


@shared_task(name="comms.tasks.alerts_sweep", ignore_result=True)
def alerts_sweep() -> dict[str, int]:
    return services.alerts_sweep()


@shared_task(name="comms.tasks.exercise_inject_release", ignore_result=True)
def exercise_inject_release_task(inject_id: int) -> str:
    return exercises.inject_release(inject_id=inject_id)


@shared_task(name="comms.tasks.exercise_sweep", ignore_result=True)
def exercise_sweep() -> int:
    return exercises.exercise_sweep()
