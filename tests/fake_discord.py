"""A small fake Discord (gateway websocket + REST) on 127.0.0.1 for end-to-end tests of a real discord.py client.

Usage (see tests/test_fake_discord.py; tests/discord_echo_bot.py is a bot run as a subprocess like `storybot bot`)::

    alice = User(id=42, name="alice", roles=[77])        # roles: the member's role ids in the guild
    guild = Guild(id=1000, channels=[Channel(id=2000)], members=[alice], roles=[77], premium_tier=2)
    async with FakeDiscord(token="t0ken", guilds=[guild]) as fake:   # free port
        # subprocess bot: env DISCORD_TOKEN=t0ken DISCORD_API_BASE=fake.api_base; the bot sets Route.BASE and
        #   DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL((await http.get_bot_gateway())[1])  (= fake.gateway_url)
        await fake.wait_connected(15)                    # IDENTIFY (or RESUME) arrived, READY + GUILD_CREATEs sent
        await fake.wait_for(lambda: fake.commands.get(None), 5)  # {None: global cmds, guild_id: guild cmds} (PUT)
        i = await fake.slash(alice, 2000, "video", {"prompt": "a cat", "duration": 20})  # -> FakeInteraction
        await fake.wait_for(lambda: i.message_id, timeout=3)     # wait_for polls; returns the truthy value
        i.responses        # [(callback type, body)]: 4 message, 5 defer, 6 deferred update, 7 update, 9 modal
        i.response_delay   # seconds from INTERACTION_CREATE to the first callback (3 s deadline)
        msg = fake.message(i.message_id)                 # the @original FakeMessage
        msg.content, msg.embeds, msg.components, msg.attachments[0].data, msg.flags, msg.ephemeral,
        msg.allowed_mentions, msg.interaction_id, msg.via ("callback"|"webhook"|"channel"|"user"),
        msg.edits          # [(monotonic time, PATCH body)]; a deferred reply's first edit counts too
        await fake.click(alice, msg, "job:1:cancel")     # button  (component_type 2)  -> FakeInteraction
        await fake.select(alice, msg, "pick", ["2"])     # select menu (component_type 3)
        await fake.submit_modal(alice, i.responses[0][1]["data"]["custom_id"], {"note": "hi"}, channel_id=2000)
        m = await fake.say(alice, 2000, "text", reply_to=msg, attachments=[("script.txt", b"...")])
        fake.messages, fake.bot_messages                 # all / only those the bot created
        fake.requests      # every REST call: FakeRequest(method, path without /api/v10, query, json, parts, at, status)
        fake.interactions, fake.identifies, fake.resumes
        fake.errors        # exceptions inside the fake's handlers (answered 500): assert it stays empty
        fake.expire_tokens()                             # later webhook calls with older tokens -> 401 50027
        await fake.disconnect()                          # server closes the socket: the client RESUMEs
        fake.invalidate_sessions()                       # ... or, after this, re-IDENTIFYs
        await fake.dispatch("ANY_EVENT", {...})          # raw gateway dispatch

Behaviour copied from the real API: a second interaction callback -> 400 code 40060; content > 2000, embed
description > 4096, > 10 embeds, > 10 files, > 5 action rows, custom_id > 100 -> 400 code 50035 with `errors`;
uploads over the guild limit (10 MiB, 50 MiB at premium_tier 2, 100 MiB at 3; `Guild(attachment_size_limit=N)`
reports and enforces N instead, `Guild(refuse_over=N)` refuses over N what it reports as fitting) -> 413 code
40005; unknown route ->
404 JSON. `GET /channels/{id}/messages` returns the channel's history, newest first.
RESUME (op 6) of a session this fake issued gets RESUMED; after `invalidate_sessions()` it gets
INVALID_SESSION (op 9, d=false) and the client identifies again (discord.py sleeps 5 s first).
Attachments that users send are served at `GET /attachments/{id}/{filename}` by this server.
Not modelled: intents (MESSAGE_CREATE always carries content), permissions, real rate limits (headers are
constant, no 429), threads/DMs beyond a bare channel id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

MiB = 1024 * 1024
TIER_LIMITS = {0: 10 * MiB, 1: 10 * MiB, 2: 50 * MiB, 3: 100 * MiB}
_EPOCH_MS = 1420070400000
_ids = itertools.count(1)


def snowflake() -> int:
    """A unique, time-ordered Discord-style id."""
    return ((int(time.time() * 1000) - _EPOCH_MS) << 22) | (next(_ids) & 0x3FFFFF)


def _iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() if t is None else t))


@dataclass
class User:
    id: int
    name: str = "user"
    roles: list[int] = field(default_factory=list)  # role ids this member has in the guild
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }

    def member(self) -> dict[str, Any]:
        return {
            "user": self.payload(),
            "roles": [str(r) for r in self.roles],
            "joined_at": _iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "permissions": str((1 << 41) - 1),
        }


@dataclass
class Channel:
    id: int
    name: str = "general"
    type: int = 0  # 0 text


@dataclass
class Guild:
    id: int
    name: str = "guild"
    channels: list[Channel] = field(default_factory=list)
    members: list[User] = field(default_factory=list)
    roles: list[int] = field(default_factory=list)  # extra role ids (the @everyone role is the guild id)
    premium_tier: int = 0
    attachment_size_limit: int | None = None  # the limit interactions report and uploads meet (None: the tier's)
    refuse_over: int | None = None  # uploads over this get 413 40005 even under the reported limit

    @property
    def upload_limit(self) -> int:
        """What interactions report as `attachment_size_limit`."""
        return self.attachment_size_limit or TIER_LIMITS.get(self.premium_tier, 10 * MiB)

    @property
    def enforced_limit(self) -> int:
        return min(self.upload_limit, self.refuse_over or self.upload_limit)

    def payload(self, me: User) -> dict[str, Any]:
        roles = [
            {
                "id": str(r),
                "name": "everyone" if r == self.id else f"role{r}",
                "permissions": "1071698660929",
                "position": 0 if r == self.id else 1,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for r in [self.id, *self.roles]
        ]
        channels: list[dict[str, Any]] = [
            {
                "id": str(c.id),
                "type": c.type,
                "name": c.name,
                "position": n,
                "guild_id": str(self.id),
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
            }
            for n, c in enumerate(self.channels)
        ]
        members = [u.member() for u in [me, *self.members]]
        return {
            "id": str(self.id),
            "name": self.name,
            "unavailable": False,
            "owner_id": str(me.id),
            "premium_tier": self.premium_tier,
            "member_count": len(members),
            "members": members,
            "channels": channels,
            "threads": [],
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "large": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "system_channel_flags": 0,
            "preferred_locale": "en-US",
            "joined_at": _iso(),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }


@dataclass
class FakeAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: dict[str, Any] | None = None
    interaction_id: int | None = None  # the interaction this message answered, if any
    author: User | None = None
    reference_id: int | None = None  # message this one replies to
    via: str = "channel"  # channel | callback | webhook | user
    edits: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (time, patch body)
    deleted: bool = False
    created_at: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    payload: dict[str, Any]
    dispatched_at: float
    responses: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # callback (type, data)
    response_delay: float | None = None  # seconds from dispatch to the first callback
    message_id: int | None = None  # the @original message, once there is one


@dataclass
class FakeRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    parts: dict[str, tuple[str | None, bytes]]  # multipart name -> (filename, bytes)
    at: float
    status: int = 0


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.body = status, {"code": code, "message": message, **({"errors": errors} if errors else {})}


def _invalid(path: str, code: str, message: str) -> ApiError:
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path.split(".")):
        errors = {key: errors}
    return ApiError(400, 50035, "Invalid Form Body", errors)


class FakeDiscord:
    def __init__(
        self,
        token: str = "fake-token",
        guilds: list[Guild] | None = None,
        app_id: int = 1100000000000000001,
        bot_user: User | None = None,
        heartbeat_interval_ms: int = 41250,
    ):
        self.token, self.app_id = token, app_id
        self.guilds = guilds or []
        self.me = bot_user or User(id=app_id, name="storybot", bot=True)
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.messages: list[FakeMessage] = []
        self.interactions: list[FakeInteraction] = []
        self.requests: list[FakeRequest] = []
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.user_attachments: dict[int, FakeAttachment] = {}
        self.identifies: list[dict[str, Any]] = []  # every IDENTIFY d received (one per (re)connect)
        self.resumes = 0
        self.errors: list[str] = []  # unexpected exceptions inside handlers
        self._expired_tokens: set[str] = set()
        self._sessions: set[str] = set()
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=200 * MiB)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{name}", self._serve_attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and self._ws is not None and not self._ws.closed

    async def wait_connected(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5, interval: float = 0.02) -> Any:  # noqa: ASYNC109
        """Poll `predicate` until it returns something truthy; return that value (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s")
            await asyncio.sleep(interval)

    async def disconnect(self, code: int = 4000) -> None:
        """Close the websocket from the server side (like Discord does)."""
        self._ready.clear()
        if self._ws is not None:
            await self._ws.close(code=code)

    def invalidate_sessions(self) -> None:
        """Later RESUMEs get INVALID_SESSION (op 9); discord.py then waits 5 s (before_identify_hook) and IDENTIFYs."""
        self._sessions.clear()

    def expire_tokens(self) -> None:
        """Interaction tokens issued so far stop working for webhooks (401 code 50027), like after 15 min."""
        self._expired_tokens.update(i.token for i in self.interactions)

    @property
    def bot_messages(self) -> list[FakeMessage]:
        """Messages the client created (not the ones users sent with `say`)."""
        return [m for m in self.messages if m.via != "user"]

    def message(self, message_id: int) -> FakeMessage:
        return next(m for m in self.messages if m.id == message_id)

    def guild_of(self, channel_id: int) -> Guild | None:
        return next((g for g in self.guilds if any(c.id == channel_id for c in g.channels)), None)

    # ---- gateway -------------------------------------------------------------------------------------------
    async def _send(self, op: int, d: Any, t: str | None = None) -> None:
        if self._ws is None or self._ws.closed:
            raise RuntimeError("no client connected to the fake gateway")
        s = None
        if op == 0:
            self._seq += 1
            s = self._seq
        await self._ws.send_str(json.dumps({"op": op, "d": d, "s": s, "t": t}))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send any gateway event (op 0) to the connected client."""
        await self._send(0, data, event)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        self._ws = ws
        self._ready.clear()
        await self._send(10, {"heartbeat_interval": self.heartbeat_interval_ms})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            op = data.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif op == 2:
                if data["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                self.identifies.append(data["d"])
                await self._send_ready()
            elif op == 6:  # RESUME: replay nothing, just say RESUMED if the session is known
                self.resumes += 1
                if data["d"].get("session_id") in self._sessions and data["d"].get("token") == self.token:
                    await self.dispatch("RESUMED", {})
                    self._ready.set()
                else:
                    await self._send(9, False)
        if self._ws is ws:
            self._ready.clear()
        return ws

    async def _send_ready(self) -> None:
        self._seq = 0
        session_id = f"session-{snowflake()}"
        self._sessions.add(session_id)
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.me.payload(),
                "session_id": session_id,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.app_id), "flags": 0},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in self.guilds],
                "private_channels": [],
                "relationships": [],
                "user_settings": {},
                "shard": [0, 1],
            },
        )
        for g in self.guilds:
            await self.dispatch("GUILD_CREATE", g.payload(self.me))
        self._ready.set()

    # ---- user actions --------------------------------------------------------------------------------------
    async def _interact(
        self,
        type_: int,
        user: User,
        channel_id: int,
        data: dict[str, Any],
        guild_id: int | None = None,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        guild = next((g for g in self.guilds if g.id == guild_id), None) if guild_id else self.guild_of(channel_id)
        iid = snowflake()
        token = f"aW50ZXJhY3Rpb24{iid}.{secrets.token_urlsafe(48)}"  # long enough for Webhook.from_url
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": type_,
            "data": data,
            "token": token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": str((1 << 41) - 1),
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0 if guild else 1,
            "attachment_size_limit": guild.upload_limit if guild else 10 * MiB,
            "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "name": "general"},
        }
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["guild_locale"] = "en-US"
            payload["channel"]["guild_id"] = str(guild.id)
            payload["member"] = user.member()
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self._message_payload(message)
        interaction = FakeInteraction(iid, token, type_, payload, time.monotonic())
        self.interactions.append(interaction)
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def slash(
        self,
        user: User,
        channel_id: int,
        name: str,
        options: dict[str, Any] | None = None,
        guild_id: int | None = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """Run slash command `name`; option types are guessed from the Python values (str/int/float/bool)."""

        def opt(k: str, v: Any) -> dict[str, Any]:
            t = 5 if isinstance(v, bool) else 4 if isinstance(v, int) else 10 if isinstance(v, float) else 3
            return {"name": k, "type": t, "value": v}

        opts = [opt(k, v) for k, v in (options or {}).items()]
        if subcommand:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        scope = self.commands.get(guild_id, []) + self.commands.get(None, [])
        cmd = next((c for c in scope if c["name"] == name), None)
        data = {"id": cmd["id"] if cmd else str(snowflake()), "name": name, "type": 1, "options": opts}
        if guild_id:
            data["guild_id"] = str(guild_id)
        return await self._interact(2, user, channel_id, data, guild_id)

    async def click(self, user: User, message: FakeMessage, custom_id: str) -> FakeInteraction:
        return await self._interact(
            3, user, message.channel_id, {"custom_id": custom_id, "component_type": 2}, message=message
        )

    async def select(self, user: User, message: FakeMessage, custom_id: str, values: list[str]) -> FakeInteraction:
        return await self._interact(
            3,
            user,
            message.channel_id,
            {"custom_id": custom_id, "component_type": 3, "values": values},
            message=message,
        )

    async def submit_modal(
        self,
        user: User,
        custom_id: str,
        fields: dict[str, str],
        channel_id: int | None = None,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        channel_id = channel_id or (message.channel_id if message else self.guilds[0].channels[0].id)
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in fields.items()]
        return await self._interact(5, user, channel_id, {"custom_id": custom_id, "components": rows}, message=message)

    async def say(
        self,
        user: User,
        channel_id: int,
        content: str,
        reply_to: FakeMessage | None = None,
        attachments: list[tuple[str, bytes]] | None = None,
    ) -> FakeMessage:
        """A user posts a message (MESSAGE_CREATE); attachments are served by this fake."""
        msg = FakeMessage(
            snowflake(), channel_id, content, author=user, via="user", reference_id=reply_to.id if reply_to else None
        )
        for name, data in attachments or []:
            att = FakeAttachment(snowflake(), name, data)
            self.user_attachments[att.id] = att
            msg.attachments.append(att)
        self.messages.append(msg)
        payload = self._message_payload(msg)
        guild = self.guild_of(channel_id)
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["member"] = {k: v for k, v in user.member().items() if k != "user"}
        if reply_to is not None:
            payload["referenced_message"] = self._message_payload(reply_to)
        await self.dispatch("MESSAGE_CREATE", payload)
        return msg

    # ---- payloads ------------------------------------------------------------------------------------------
    def _message_payload(self, m: FakeMessage) -> dict[str, Any]:
        author = m.author or self.me
        p: dict[str, Any] = {
            "id": str(m.id),
            "channel_id": str(m.channel_id),
            "type": 19 if m.reference_id else 0,
            "content": m.content,
            "author": author.payload(),
            "embeds": m.embeds,
            "components": m.components,
            "attachments": [
                {
                    "id": str(a.id),
                    "filename": a.filename,
                    "size": a.size,
                    "url": f"{self.base_url}/attachments/{a.id}/{a.filename}",
                    "proxy_url": f"{self.base_url}/attachments/{a.id}/{a.filename}",
                    **({"content_type": a.content_type} if a.content_type else {}),
                }
                for a in m.attachments
            ],
            "flags": m.flags,
            "timestamp": _iso(),
            "edited_timestamp": _iso() if m.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
        }
        if m.reference_id:
            p["message_reference"] = {"message_id": str(m.reference_id), "channel_id": str(m.channel_id)}
        if m.interaction_id:
            p["webhook_id"] = str(self.app_id)
            p["application_id"] = str(self.app_id)
        return p

    # ---- REST ----------------------------------------------------------------------------------------------
    async def _serve_attachment(self, request: web.Request) -> web.Response:
        att = self.user_attachments.get(int(request.match_info["id"]))
        if att is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=att.data, content_type="application/octet-stream")

    async def _read_body(self, request: web.Request) -> tuple[Any, dict[str, tuple[str | None, bytes]]]:
        parts: dict[str, tuple[str | None, bytes]] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part is None or not hasattr(part, "read"):
                    continue
                parts[part.name or ""] = (part.filename, bytes(await part.read(decode=False)))  # type: ignore[union-attr]
            body = json.loads(parts["payload_json"][1]) if "payload_json" in parts else None
            return body, parts
        raw = await request.read()
        return (json.loads(raw) if raw else None), parts

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body, parts = await self._read_body(request)
        rec = FakeRequest(
            request.method, "/" + request.match_info["tail"], dict(request.query), body, parts, time.monotonic()
        )
        self.requests.append(rec)
        try:
            auth = request.headers.get("Authorization")
            if not rec.path.startswith(("/webhooks/", "/interactions/")) and auth != f"Bot {self.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            status, result = await self._route(rec)
        except ApiError as e:
            status, result = e.status, e.body
        except Exception as e:  # a bug in the fake or a payload it does not understand: make it visible
            self.errors.append(f"{rec.method} {rec.path}: {e!r}")
            status, result = 500, {"message": repr(e), "code": 0}
        rec.status = status
        if status == 204:
            return web.Response(status=204)
        # discord.py parses JSON only for a Content-Type of exactly "application/json" (no charset)
        return web.Response(
            body=json.dumps(result).encode(),
            status=status,
            headers={
                "Content-Type": "application/json",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset-After": "1.0",
                "X-RateLimit-Bucket": "fake",
            },
        )

    async def _route(self, r: FakeRequest) -> tuple[int, Any]:
        seg = r.path.strip("/").split("/")
        m, n = r.method, len(seg)
        if m == "GET" and r.path == "/gateway/bot":
            return 200, {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
            }
        if m == "GET" and r.path == "/gateway":
            return 200, {"url": self.gateway_url}
        if m == "GET" and r.path == "/users/@me":
            return 200, self.me.payload()
        if m == "GET" and r.path == "/oauth2/applications/@me":
            return 200, {
                "id": str(self.app_id),
                "name": self.me.name,
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": self.me.payload(),
                "team": None,
            }
        if seg[0] == "applications" and seg[-1] == "commands" and n in (3, 5):
            guild_id = int(seg[3]) if n == 5 else None
            if m == "PUT":
                cmds = [
                    {
                        **c,
                        "id": c.get("id") or str(snowflake()),
                        "application_id": str(self.app_id),
                        "version": str(snowflake()),
                        "description": c.get("description", ""),
                        "type": c.get("type", 1),
                        "options": c.get("options", []),
                        "default_member_permissions": c.get("default_member_permissions"),
                        "nsfw": c.get("nsfw", False),
                        **({"guild_id": str(guild_id)} if guild_id else {}),
                    }
                    for c in r.json or []
                ]
                self.commands[guild_id] = cmds
                return 200, cmds
            if m == "GET":
                return 200, self.commands.get(guild_id, [])
        if seg[0] == "interactions" and n == 4 and seg[3] == "callback" and m == "POST":
            return await self._callback(int(seg[1]), seg[2], r)
        if seg[0] == "webhooks" and n >= 3:
            return self._webhook(seg[2], seg[3:], r)
        if seg[0] == "channels" and n >= 2:
            cid = int(seg[1])
            if n == 2 and m == "GET":
                g = self.guild_of(cid)
                if g is None:
                    raise ApiError(404, 10003, "Unknown Channel")
                return 200, next(c for c in g.payload(self.me)["channels"] if c["id"] == str(cid))
            if n == 3 and seg[2] == "typing" and m == "POST":
                return 204, None
            if n == 3 and seg[2] == "messages" and m == "POST":
                msg = self._new_message(cid, r, via="channel")
                ref = (r.json or {}).get("message_reference")
                msg.reference_id = int(ref["message_id"]) if ref else None
                return 200, self._message_payload(msg)
            if n == 3 and seg[2] == "messages" and m == "GET":  # history, newest first
                limit = min(int(r.query.get("limit", 50)), 100)
                before = int(r.query.get("before", 0)) or None
                found = [
                    x
                    for x in reversed(self.messages)
                    if x.channel_id == cid and not x.deleted and not x.ephemeral and (before is None or x.id < before)
                ]
                return 200, [self._message_payload(x) for x in found[:limit]]
            if n == 4 and seg[2] == "messages":
                return self._existing(cid, int(seg[3]), r)
        raise ApiError(404, 0, f"404: Not Found (fake has no route {r.method} {r.path})")

    def _existing(self, channel_id: int, message_id: int, r: FakeRequest) -> tuple[int, Any]:
        msg = next((x for x in self.messages if x.id == message_id and not x.deleted), None)
        if msg is None or msg.channel_id != channel_id:
            raise ApiError(404, 10008, "Unknown Message")
        if r.method == "GET":
            return 200, self._message_payload(msg)
        if r.method == "DELETE":
            msg.deleted = True
            return 204, None
        if r.method == "PATCH":
            self._apply_edit(msg, r)
            return 200, self._message_payload(msg)
        raise ApiError(405, 0, "405: Method Not Allowed")

    async def _callback(self, iid: int, token: str, r: FakeRequest) -> tuple[int, Any]:
        inter = next((i for i in self.interactions if i.id == iid and i.token == token), None)
        if inter is None:
            raise ApiError(404, 10062, "Unknown interaction")
        if inter.responses:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = r.json or {}
        rtype, data = body.get("type"), body.get("data") or {}
        if rtype not in (1, 4, 5, 6, 7, 8, 9, 10, 12):
            raise _invalid("type", "BASE_TYPE_CHOICES", f"Value must be one of interaction response types: {rtype}")
        channel_id = int(inter.payload["channel_id"])
        msg: FakeMessage | None = None
        if rtype in (4, 5):
            fake_r = FakeRequest(r.method, r.path, r.query, data, r.parts, r.at)
            msg = self._new_message(channel_id, fake_r, via="callback", interaction_id=iid)
            if rtype == 5:
                msg.content, msg.flags = "", (data.get("flags") or 0) | 128  # LOADING
            inter.message_id = msg.id
        elif rtype == 7:
            if inter.type != 3 or "message" not in inter.payload:
                raise ApiError(400, 50035, "Invalid Form Body")
            msg = self.message(int(inter.payload["message"]["id"]))
            self._apply_edit(msg, FakeRequest(r.method, r.path, r.query, data, r.parts, r.at))
        elif rtype == 6 and "message" in inter.payload:
            inter.message_id = int(inter.payload["message"]["id"])
        elif rtype == 9:
            self._check_components(data.get("components") or [], "data.components", modal=True)
            if len(data.get("title", "")) > 45:
                raise _invalid("data.title", "BASE_TYPE_MAX_LENGTH", "Must be 45 or fewer in length.")
        inter.responses.append((rtype, body))
        inter.response_delay = r.at - inter.dispatched_at
        if r.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        out: dict[str, Any] = {
            "interaction": {
                "id": str(iid),
                "type": inter.type,
                "activity_instance_id": None,
                "response_message_id": str(inter.message_id) if inter.message_id else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool((data.get("flags") or 0) & 64),
            },
            "resource": {"type": rtype},
        }
        if msg is not None:
            out["resource"]["message"] = self._message_payload(msg)
        return 200, out

    def _webhook(self, token: str, rest: list[str], r: FakeRequest) -> tuple[int, Any]:
        inter = next((i for i in self.interactions if i.token == token), None)
        if inter is None or token in self._expired_tokens:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        channel_id = int(inter.payload["channel_id"])
        if not rest and r.method == "POST":
            if not inter.responses:
                raise ApiError(404, 10015, "Unknown Webhook")
            msg = self._new_message(channel_id, r, via="webhook", interaction_id=inter.id)
            return (200, self._message_payload(msg)) if r.query.get("wait") in ("1", "true", "True") else (204, None)
        if len(rest) == 2 and rest[0] == "messages":
            mid = inter.message_id if rest[1] == "@original" else int(rest[1])
            if mid is None:
                raise ApiError(404, 10008, "Unknown Message")
            msg = self.message(mid)
            if msg.interaction_id != inter.id and rest[1] != "@original":
                raise ApiError(404, 10008, "Unknown Message")
            if r.method == "PATCH" and msg.flags & 128:  # editing a deferred reply completes it
                msg.flags &= ~128
            return self._existing(msg.channel_id, mid, r)
        raise ApiError(404, 0, f"404: Not Found (fake has no webhook route {r.method} {r.path})")

    # ---- messages ------------------------------------------------------------------------------------------
    def _files(self, r: FakeRequest) -> list[FakeAttachment]:
        files = [
            FakeAttachment(snowflake(), fn or name, data)
            for name, (fn, data) in r.parts.items()
            if name.startswith("files[") or name == "file"
        ]
        return files

    def _validate(self, channel_id: int, body: dict[str, Any], files: list[FakeAttachment]) -> None:
        content = body.get("content")
        if content is not None and len(content) > 2000:
            raise _invalid("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            raise _invalid("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        for n, e in enumerate(embeds):
            if len(e.get("description") or "") > 4096:
                raise _invalid(f"embeds.{n}.description", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length.")
            if len(e.get("title") or "") > 256:
                raise _invalid(f"embeds.{n}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
        total = sum(
            len(e.get("title") or "")
            + len(e.get("description") or "")
            + len((e.get("footer") or {}).get("text") or "")
            + len((e.get("author") or {}).get("name") or "")
            + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in e.get("fields") or [])
            for e in embeds
        )
        if total > 6000:
            raise _invalid("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        self._check_components(body.get("components") or [], "components")
        if len(files) > 10:
            raise _invalid("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        guild = self.guild_of(channel_id)
        limit = guild.enforced_limit if guild else 10 * MiB
        if sum(f.size for f in files) > limit:
            raise ApiError(413, 40005, "Request entity too large")

    def _check_components(self, rows: list[dict[str, Any]], path: str, modal: bool = False) -> None:
        if len(rows) > 5:
            raise _invalid(path, "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for n, row in enumerate(rows):
            items = row.get("components") or ([row.get("component")] if row.get("component") else [])
            for k, item in enumerate(items):
                if len(item.get("custom_id") or "") > 100:
                    raise _invalid(
                        f"{path}.{n}.components.{k}.custom_id",
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 100 or fewer in length.",
                    )
                if modal and item.get("max_length", 0) > 4000:
                    raise _invalid(
                        f"{path}.{n}.components.{k}.max_length",
                        "NUMBER_TYPE_MAX",
                        "int value should be less than or equal to 4000.",
                    )

    def _new_message(self, channel_id: int, r: FakeRequest, via: str, interaction_id: int | None = None) -> FakeMessage:
        body = r.json or {}
        files = self._files(r)
        self._validate(channel_id, body, files)
        self._name_files(body, files)
        msg = FakeMessage(
            snowflake(),
            channel_id,
            body.get("content") or "",
            list(body.get("embeds") or []),
            list(body.get("components") or []),
            files,
            int(body.get("flags") or 0),
            body.get("allowed_mentions"),
            interaction_id,
            via=via,
        )
        self.messages.append(msg)
        return msg

    @staticmethod
    def _name_files(body: dict[str, Any], files: list[FakeAttachment]) -> None:
        for n, f in enumerate(files):  # payload "attachments": [{"id": n, "filename": ...}] may rename
            meta = next((a for a in body.get("attachments") or [] if str(a.get("id")) == str(n)), None)
            if meta and meta.get("filename"):
                f.filename = meta["filename"]

    def _apply_edit(self, msg: FakeMessage, r: FakeRequest) -> None:
        body = r.json or {}
        files = self._files(r)
        self._validate(msg.channel_id, body, files)
        self._name_files(body, files)
        if "content" in body:
            msg.content = body["content"] or ""
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body:  # kept existing attachments are listed by id; new ones come as files
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            msg.attachments = [a for a in msg.attachments if str(a.id) in keep] + files
        elif files:
            msg.attachments += files
        msg.edits.append((time.monotonic(), body))
