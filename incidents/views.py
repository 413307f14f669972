"""Server-rendered pages of the incidents app."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Incident


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The incidents the signed-in user may see, newest first."""
    incidents = (
        Incident.objects.visible_to(request.user)
        .select_related("city", "lead_agency")
        .order_by("-opened_at")
    )
    return render(request, "home.html", {"incidents": incidents})
