"""WebSocket consumers. They only subscribe and forward; they never write to the database.

Messages from server to client (JSON text frames; the browser client and alerting rely on them):

``{"type": "hello", "incident": <id>, "last_seq": <n>}``
    First message of every connection, sent once it is registered for its topics (``/ws/me/``
    sends ``{"type": "hello"}``). ``last_seq`` is read after registering: every event above it
    will arrive on this socket while it stays open, so a client replays
    ``events/?after=<its own last seq>`` up to it. Sent again if the server's subscription was
    interrupted: compare and replay again.
``{"type": "event", "event": {...}}``
    One incident event, as ``/api/v1/incidents/<id>/events/`` shows it. An event whose marking
    this connection's user may not read (AMBER+STRICT without their agency named, RED without
    them named) arrives as ``{"seq": n, "kind": "hidden"}`` so the numbering has no false gap.
    Two changes committed at the same moment may arrive in either order: apply
    events by ``seq``, replay when one is missing, ignore a ``seq`` already applied.
``{"type": "presence", "present": [{"user_id", "name", "agency_id", "agency"}, ...]}``
    Everyone with this incident's dashboard open, one entry per person; sent after connecting
    and whenever it changes.
anything published to ``user:<me>``
    Forwarded as-is, e.g. ``{"type": "alert", "alert": {...}}``.

Refusals close the socket after the handshake, so that a browser can read the code:
4401 no session, or a session whose second factor is outstanding
(``coordination.mfa.mfa_satisfied``); 4404 no such incident or not visible to this user; 1013 live
updates are unavailable right now (try again later). A foreign ``Origin`` is refused at the
handshake. An open connection is checked again every ``LIVE_REVALIDATE_SECONDS``: a session that
ended or lost its second factor (4401) or an incident no longer visible, e.g. the agency left it
(4404), closes it. A client that stops reading
is dropped without a close frame (1006; 4408 under servers other than uvicorn): reconnect, replay.
"""

import asyncio
import random
import weakref
from importlib import import_module
from typing import Any

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings

from coordination.markings import OPEN_TO_PARTICIPANTS, Audience
from coordination.mfa import mfa_satisfied
from ctpn.realtime import encode, incident_topic, user_topic
from incidents.events import event_placeholder
from incidents.models import Incident

from .fanout import OUTBOX_SEND, LiveConnection, MessageFilter, get_hub
from .presence import Presence, get_presence

# Put in a consumer's own queue when its access is due to be checked again.
REVALIDATE = "live.revalidate"

# Close codes in the application range (4000-4999), so the client knows not to retry blindly.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_VISIBLE = 4404
CLOSE_TOO_SLOW = 4408
LARGEST_ID = 2**63 - 1  # a bigint primary key
# RFC 6455 "try again later": the server cannot promise live delivery at the moment.
CLOSE_TRY_AGAIN_LATER = 1013


class Refused(Exception):
    """Raised by ``TopicConsumer.topics`` to close the connection with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# The two forms of the event message last seen: without its audience, and as a placeholder.
# Built once per message for every reader of every incident (the hub dispatches one message at a
# time, and keeps the message alive while it does), so their encodings can be shared too.
_variants_of: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None


def _variants(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    global _variants_of
    if _variants_of is None or _variants_of[0] is not message:
        readable = {key: value for key, value in message.items() if key != "audience"}
        event = message.get("event") or {}
        hidden = {"type": "event", "event": event_placeholder(event.get("seq"))}
        _variants_of = (message, readable, hidden)
    return _variants_of[1], _variants_of[2]


class EventReader:
    """The live filter of one person: events they may read pass, the rest become placeholders.

    A restricted event's message carries its ``audience`` (recipient agency and people ids,
    see ``incidents.events.event_publish``); it is stripped from what every client receives.
    Deny by default: a restricted event without an audience, or an unknown marking, is hidden.
    One reader is shared by every connection of the same person in this process
    (``reader_for``), so the hub runs it once per message per person, not per socket.
    """

    def __init__(self, *, user_id: int | None, agency_id: int | None) -> None:
        self.user_id = user_id
        self.agency_id = agency_id

    def __call__(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("type") != "event":
            return message
        event = message.get("event") or {}
        marking = event.get("marking")
        if marking in OPEN_TO_PARTICIPANTS and "audience" not in message:
            return message
        readable, hidden = _variants(message)
        audience = message.get("audience") or {}
        try:
            admitted = Audience(
                marking=str(marking),
                agencies=tuple(audience.get("agencies") or ()),
                people=tuple(audience.get("people") or ()),
            ).admits(user_id=self.user_id, agency_id=self.agency_id)
        except (AttributeError, TypeError):  # a malformed audience: nobody reads it
            admitted = False
        return readable if admitted else hidden


_readers: "weakref.WeakValueDictionary[tuple[int | None, int | None], EventReader]" = (
    weakref.WeakValueDictionary()
)


def reader_for(*, user_id: int | None, agency_id: int | None) -> EventReader:
    """The process's live filter for this person (kept while one of their connections is open)."""
    key = (user_id, agency_id)
    reader = _readers.get(key)
    if reader is None:
        reader = EventReader(user_id=user_id, agency_id=agency_id)
        _readers[key] = reader
    return reader


# Someone named on nothing: reads the open markings only.
hide_unreadable_events = EventReader(user_id=None, agency_id=None)


class TopicConsumer(AsyncWebsocketConsumer):
    """A socket that listens to some live topics and forwards what is published to them.

    Subclasses say which topics a connection may join (``topics``, raising ``Refused``), what the
    first message says (``hello``), and optionally which filter applies (``message_filter``).

    There is no channel layer here: Channels would otherwise create a channel per connection
    (``AsyncConsumer.__call__``), and the process's hub (``comms.fanout``) does the delivering.
    The consumer's own task still serves the ASGI side: the client's frames, the close, and, when
    the server's transport cannot be written to directly, the frames the hub queued for it.
    """

    channel_layer_alias = "__no_channel_layer__"  # never configured: get_channel_layer -> None

    live: LiveConnection | None = None
    _revalidation: asyncio.TimerHandle | None = None

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        try:
            await await_many_dispatch([receive, self.outbox.get], self.dispatch)
        except StopConsumer:
            pass
        finally:
            self._leave()

    # --- what subclasses define -----------------------------------------------------------------

    async def topics(self, user) -> list[str]:
        raise NotImplementedError

    async def hello(self) -> dict[str, Any]:
        return {"type": "hello"}

    def message_filter(self) -> MessageFilter | None:
        return None

    async def still_allowed(self, user) -> int | None:
        """On a periodic re-check: None if ``user`` may keep this connection, else a close code."""
        return None

    async def joined(self) -> None:
        """Called once the client has its hello (e.g. to count it as present)."""

    def left(self) -> None:
        """Called once when the connection ends, however it ends. Must not block."""

    # --- the connection's life ------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(mfa_satisfied)(user, self.scope.get("session")):
            await self.close(code=CLOSE_UNAUTHENTICATED)  # signing in is not finished
            return
        try:
            topics = await self.topics(user)
        except Refused as refusal:
            await self.close(code=refusal.code)
            return
        live = LiveConnection(
            send=self.base_send,
            outbox=self.outbox,
            topics=topics,
            message_filter=self.message_filter(),
        )
        if not await get_hub().join(live):
            await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="live updates unavailable")
            return
        self.live = live
        await self.send(text_data=encode(await self.hello()))
        live.go_live()
        await self.joined()
        self._schedule_revalidation()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Clients have nothing to say on this socket; writes go through the API."""

    async def disconnect(self, code: int) -> None:
        self._leave()

    def _leave(self) -> None:
        if self._revalidation is not None:
            self._revalidation.cancel()
            self._revalidation = None
        live, self.live = self.live, None
        if live is not None:
            if live.hub is not None:
                live.hub.leave(live)
            live.cut_off = True
            self.left()

    # --- messages the hub queued for this consumer's task (``comms.fanout.OUTBOX_*``) ----------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Frames skip Channels' dispatch, which hops to a thread to close stale database
        # connections before every handler: once per frame would be a thread hop per frame.
        if message["type"] == OUTBOX_SEND:
            await self.live_send(message)
            return
        await super().dispatch(message)

    async def live_send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=message["text"])
        if self.live is not None:
            self.live.sent(len(message["text"]))

    async def live_cut_off(self, message: dict[str, Any]) -> None:
        await self.close(code=CLOSE_TOO_SLOW)

    async def live_resync(self, message: dict[str, Any]) -> None:
        if self.live is not None:
            await self.send(text_data=encode(await self.hello()))

    # --- access is checked again while the connection lasts -------------------------------------

    def _schedule_revalidation(self) -> None:
        interval = settings.LIVE_REVALIDATE_SECONDS
        if interval <= 0 or self.live is None:
            return
        # Spread out, so that the screens of a connect storm are not all re-checked at once.
        delay = interval * random.uniform(0.75, 1.25)
        self._revalidation = asyncio.get_running_loop().call_later(
            delay, self.outbox.put_nowait, {"type": REVALIDATE}
        )

    async def live_revalidate(self, message: dict[str, Any]) -> None:
        self._revalidation = None
        if self.live is None:
            return
        # The session as it is now (logged out, expired, password changed: no user any more).
        session = import_module(settings.SESSION_ENGINE).SessionStore(
            self.scope["session"].session_key
        )
        user = await get_user({"session": session})
        signed_in = user.is_authenticated and await database_sync_to_async(mfa_satisfied)(
            user, session
        )
        code = CLOSE_UNAUTHENTICATED if not signed_in else None
        if code is None:
            code = await self.still_allowed(user)
        if code is not None:
            self._leave()  # nothing more is written to it, from now on
            await self.close(code=code)
            return
        self._schedule_revalidation()


class IncidentConsumer(TopicConsumer):
    """One incident's dashboard: ``/ws/incidents/<id>/`` (the incident and the user's own topic)."""

    incident_id: int
    person: dict[str, Any] | None = None
    presence: Presence | None = None
    presence_id: str | None = None

    async def topics(self, user) -> list[str]:
        self.incident_id = int(self.scope["url_route"]["kwargs"]["incident_id"])
        if self.incident_id > LARGEST_ID:
            raise Refused(CLOSE_NOT_VISIBLE)  # no such incident; the database would refuse it
        self.person = await self._person_if_visible(user, self.incident_id)
        if self.person is None:
            raise Refused(CLOSE_NOT_VISIBLE)
        return [incident_topic(self.incident_id), user_topic(user.pk)]

    def message_filter(self) -> MessageFilter | None:
        user = self.scope["user"]
        # The person as they were at connect: a change of agency ends visibility of the
        # incident or not; either way the periodic re-check closes a connection that lost it.
        return reader_for(user_id=user.pk, agency_id=user.agency_id)

    async def still_allowed(self, user) -> int | None:
        visible = await self._person_if_visible(user, self.incident_id)
        return None if visible is not None else CLOSE_NOT_VISIBLE

    async def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "incident": self.incident_id,
            "last_seq": await self._last_seq(self.incident_id),
        }

    async def joined(self) -> None:
        assert self.person is not None
        self.presence = get_presence()
        self.presence_id = self.presence.join(incident_topic(self.incident_id), self.person)

    def left(self) -> None:
        presence, presence_id, self.presence_id = self.presence, self.presence_id, None
        if presence is not None and presence_id is not None:
            presence.leave(incident_topic(self.incident_id), presence_id)

    @database_sync_to_async
    def _person_if_visible(self, user, incident_id: int) -> dict[str, Any] | None:
        if not Incident.objects.visible_to(user).filter(pk=incident_id).exists():
            return None
        agency = user.agency
        return {
            "user_id": user.pk,
            "name": str(user),
            "agency_id": agency.pk if agency is not None else None,
            "agency": agency.short_name if agency is not None else "",
        }

    @database_sync_to_async
    def _last_seq(self, incident_id: int) -> int:
        return (
            Incident.objects.filter(pk=incident_id).values_list("last_event_seq", flat=True).get()
        )


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other ``/ws/`` path: closed with 4404, like an incident that cannot be seen."""

    channel_layer_alias = TopicConsumer.channel_layer_alias

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_VISIBLE)


class UserConsumer(TopicConsumer):
    """Pages without an incident (e.g. alerts): ``/ws/me/``, the user's own topic only."""

    async def topics(self, user) -> list[str]:
        return [user_topic(user.pk)]


class ActivationConsumer(TopicConsumer):
    """One activation's live board: ``/ws/activations/<id>/`` (topic ``activation:<id>``).

    Sends ``{"type": "hello", "activation": <id>}``, then every ``{"type": "activation.board",
    ...}`` change (see ``comms.serializers.board_messages``); after a reconnect the client fetches
    ``/api/v1/activations/<id>/board/`` again.
    """

    activation_id: int

    async def topics(self, user) -> list[str]:
        self.activation_id = int(self.scope["url_route"]["kwargs"]["activation_id"])
        if not await self._visible(user, self.activation_id):
            raise Refused(CLOSE_NOT_VISIBLE)
        return [f"activation:{self.activation_id}"]

    @database_sync_to_async
    def _visible(self, user, activation_id: int) -> bool:
        from .models import Activation

        return Activation.objects.visible_to(user).filter(pk=activation_id).exists()

    async def hello(self) -> dict[str, Any]:
        return {"type": "hello", "activation": self.activation_id}
