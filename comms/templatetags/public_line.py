"""``{% public_line_panel %}``: the dashboard's and wall screen's "Public line" panel.

A template tag rather than a panel of the incidents app, because the incidents app must not
import comms; the dashboard template only names the tag.
"""

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("incidents/_public_line.html", takes_context=True)
def public_line_panel(context: template.Context) -> dict[str, Any]:
    from comms.views import public_line_context

    request = context["request"]
    incident = context["incident"]
    wall = bool(context.get("wall"))
    data = public_line_context(request, incident, wall=wall)
    data.update(
        request=request,
        user=request.user,
        csrf_token=context.get("csrf_token"),
        panel_query="?wall=1" if wall else "",
    )
    return data
