"""Print the current 6-digit code of the demo authenticator that ``seed_demo`` gives the demo
accounts needing a second factor, for trying the platform without an authenticator app.

It knows only the demo secret printed with the demo logins; real accounts' secrets never leave
their devices' rows.
"""

from django.core.management.base import BaseCommand
from django_otp.oath import totp

from .seed_demo import DEMO_TOTP_KEY


class Command(BaseCommand):
    help = "Print the current code of the demo authenticator (demo accounts only)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"{totp(DEMO_TOTP_KEY):06d}")
