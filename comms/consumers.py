"""WebSocket consumers. They only subscribe and forward; they never write (see DESIGN)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from coordination.markings import OPEN_TO_PARTICIPANTS
from incidents.events import incident_group_name
from incidents.models import Incident

# Close codes in the application range (4000-4999), so the client knows not to retry blindly.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_VISIBLE = 4404


class IncidentConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one incident: ``/ws/incidents/<id>/``.

    Refuses a connection without a session, or for an incident the user may not see. Clients fill
    any gap by replaying ``/api/v1/incidents/<id>/events/?after=<seq>``.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.group = None
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        incident_id = int(self.scope["url_route"]["kwargs"]["incident_id"])
        if not await self._visible(user, incident_id):
            await self.close(code=CLOSE_NOT_VISIBLE)
            return
        self.group = incident_group_name(incident_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Clients have nothing to say on this socket; writes go through the API."""

    async def incident_event(self, message: dict) -> None:
        event = message["event"]
        # Deny by default: a marking this connection may not read is not forwarded.
        if event.get("marking") in OPEN_TO_PARTICIPANTS:
            await self.send_json(event)

    @database_sync_to_async
    def _visible(self, user, incident_id: int) -> bool:
        return Incident.objects.visible_to(user).filter(pk=incident_id).exists()
