"""Signing in (password, then the second factor) and the second factor's own pages, mounted
under /accounts/ ahead of Django's authentication URLs."""

from django.urls import path

from . import mfa_views

urlpatterns = [
    path("login/", mfa_views.SignInView.as_view(), name="login"),
    path("mfa/", mfa_views.mfa_settings, name="mfa-settings"),
    path("mfa/verify/", mfa_views.mfa_verify, name="mfa-verify"),
    path("mfa/enrol/", mfa_views.mfa_enrol, name="mfa-enrol"),
    path("mfa/backup-codes/", mfa_views.mfa_backup_codes, name="mfa-backup-codes"),
]
