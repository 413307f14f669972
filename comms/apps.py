from django.apps import AppConfig


class CommsConfig(AppConfig):
    """Live updates and, later, activation alerts, rotas and public statements."""

    name = "comms"
