"""Roles a user holds, and what each role may do.

Capabilities are checked in the services (the authority, shared by API and pages) and declared on
every API action, so an action that declares nothing is refused.
"""

from django.db import models


class Role(models.TextChoices):
    STRATEGIC_COMMANDER = "strategic_commander", "Strategic commander"
    TACTICAL_COMMANDER = "tactical_commander", "Tactical commander"
    LIAISON_OFFICER = "liaison_officer", "Liaison officer"
    LOGGIST = "loggist", "Loggist"
    DUTY_OFFICER = "duty_officer", "Duty officer"
    COMMUNICATIONS_LEAD = "communications_lead", "Communications lead"
    NEUTRAL_COMMANDER = "neutral_commander", "Neutral commander"
    OBSERVER = "observer", "Observer"
    ADMINISTRATOR = "administrator", "Administrator"
    # A member of the city's oversight committee: makes sure lessons identified are implemented.
    OVERSIGHT = "oversight", "Oversight committee member"


class Capability(models.TextChoices):
    VIEW = "view", "See incidents the user's agency participates in"
    INCIDENT_OPEN = "incident.open", "Open an incident"
    INCIDENT_TRANSITION = "incident.transition", "Move an incident through its lifecycle"
    LOG_WRITE = "log.write", "Record decisions, M/ETHANE, actions and timeline entries"
    DIRECTORY_MANAGE = "directory.manage", "Manage the city's agencies and users"
    ROTA_MANAGE = "rota.manage", "Manage the city's on-call rotas, cover and escalation policies"
    ACTIVATION_SEND = "activation.send", "Send an activation alert to agencies' duty officers"
    AUDIT_VIEW = "audit.view", "Read and export the city's security audit log"
    LESSON_WRITE = "lesson.write", "Hold debriefs, record observations and lessons; progress own"
    LESSON_OVERSEE = "lesson.oversee", "Oversee the city's lessons: assign, verify, share, import"
    STATEMENT_WRITE = (
        "statement.write",
        "Draft, approve for one's agency and publish public statements",
    )
    EXERCISE_DIRECT = "exercise.direct", "Write exercise scenarios and run exercises from them"


_COMMANDERS = {Role.STRATEGIC_COMMANDER, Role.TACTICAL_COMMANDER, Role.NEUTRAL_COMMANDER}

ROLE_CAPABILITIES: dict[str, set[str]] = {
    Capability.VIEW: set(Role),
    Capability.INCIDENT_OPEN: _COMMANDERS | {Role.DUTY_OFFICER, Role.ADMINISTRATOR},
    Capability.INCIDENT_TRANSITION: _COMMANDERS | {Role.ADMINISTRATOR},
    Capability.LOG_WRITE: _COMMANDERS | {Role.LIAISON_OFFICER, Role.LOGGIST, Role.ADMINISTRATOR},
    Capability.DIRECTORY_MANAGE: {Role.ADMINISTRATOR},
    Capability.ROTA_MANAGE: {Role.ADMINISTRATOR},
    Capability.ACTIVATION_SEND: _COMMANDERS | {Role.DUTY_OFFICER},
    Capability.AUDIT_VIEW: {Role.ADMINISTRATOR},
    # Lessons: the agencies that debrief record them and move their own through the lifecycle;
    # the oversight committee (its own role, administrators, and neutral commanders who chair
    # it in many cities) assigns owners, verifies ("learned") or does not accept, and shares.
    Capability.LESSON_WRITE: _COMMANDERS
    | {Role.LIAISON_OFFICER, Role.LOGGIST, Role.ADMINISTRATOR, Role.OVERSIGHT},
    Capability.LESSON_OVERSEE: {Role.OVERSIGHT, Role.ADMINISTRATOR, Role.NEUTRAL_COMMANDER},
    Capability.STATEMENT_WRITE: {Role.COMMUNICATIONS_LEAD},
    # Directing staff: the neutral commander chairs the cell being trained and administrators
    # prepare the exercise programme. Sending an activation inject also needs activation.send.
    Capability.EXERCISE_DIRECT: {Role.NEUTRAL_COMMANDER, Role.ADMINISTRATOR},
}


def user_can(user, capability: str) -> bool:
    """Whether ``user`` holds a role granting ``capability``. Superusers may do everything."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    granted = ROLE_CAPABILITIES.get(capability)
    if granted is None:  # fail closed on a capability nobody defined
        return False
    return bool(user.roles & granted)
