"""The Django admin, installed with a site that admits only sessions verified by a second factor
(``coordination.mfa.VerifiedAdminSite``). Kept apart from that site because an app config is
imported before any model may be."""

from django.contrib.admin.apps import AdminConfig


class VerifiedAdminConfig(AdminConfig):
    default_site = "coordination.mfa.VerifiedAdminSite"
