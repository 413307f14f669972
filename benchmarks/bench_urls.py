"""The platform's URLs plus ``/bench/bare/``: the cheapest JSON answer Django gives on the same
server process configuration, the baseline of the API throughput benchmark."""

from django.http import JsonResponse
from django.urls import path

from ctpn.urls import urlpatterns as platform_urlpatterns


def bare(request):
    return JsonResponse({"ok": True, "items": [{"n": n} for n in range(5)]})


urlpatterns = [path("bench/bare/", bare), *platform_urlpatterns]
