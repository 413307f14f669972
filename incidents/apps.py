from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Incidents, their lifecycle, M/ETHANE reports, timeline and the event stream."""

    name = "incidents"
