"""The Discord client: connects through `DISCORD_API_BASE`, registers commands and persistent buttons,
and recovers jobs after a restart. Run it with `storybot bot`.

With a shared database (STORYBOT_DATABASE_URL) several replicas may run: one holds the gateway, the
others stand by until it dies (bot/leader.py); the jobs themselves run on `storybot runner`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.conductor import Conductor
from bot.leader import GatewayLock, leadership
from bot.records import Records
from bot.views import DYNAMIC_ITEMS
from graph.api import BadInput, JobService, Settings, StorybotError, is_postgres, link_secret

log = logging.getLogger("storybot.bot")


@contextlib.asynccontextmanager
async def _nothing(service: JobService, settings: Settings) -> AsyncIterator[None]:
    yield


DISCORD_API = "https://discord.com/api/v10"


class StorybotBot(commands.Bot):
    def __init__(self, settings: Settings, service: JobService) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice channels: no warnings
        intents = discord.Intents.default()
        intents.message_content = True  # replies to approval messages carry the reviewer's note
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings, self.service = settings, service
        self.records = Records.of(settings)
        self.conductor = Conductor(self, service, self.records, settings)

    async def setup_hook(self) -> None:
        # A plain Client opens its default gateway without asking; behind a REST proxy the gateway
        # address must come from that API, as AutoShardedClient would ask.
        _shards, url, _limit = await self.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await self.load_extension("bot.commands")  # the cog's `setup`, given this bot
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        if self.conductor.guild_ids:
            for guild_id in self.conductor.guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        await self.conductor.recover()
        self._warming = asyncio.create_task(self.service.warm())  # the first script need not wait for a voice

    async def on_ready(self) -> None:
        log.info("connected as %s (%s servers)", self.user, len(self.guilds))

    async def close(self) -> None:
        await self.conductor.close()
        await super().close()


Beside = Callable[[JobService, Settings], contextlib.AbstractAsyncContextManager[object]]


async def run_bot(settings: Settings, beside: Beside | None = None) -> None:
    """Until the bot is stopped; one clear error when the token is missing or the API cannot be reached.
    `beside` runs over the same job service for as long as the bot (`storybot bot` passes the HTTP
    service, which serves the signed links the bot hands out)."""
    if settings.discord_token is None:
        raise BadInput("DISCORD_TOKEN is not set: put the bot's token in the environment or .env")
    if is_postgres(settings):
        link_secret(settings)  # replicas must share it: one clear line when STORYBOT_LINK_SECRET is unset
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    token = settings.discord_token.get_secret_value()
    async with (
        JobService.open(settings) as service,
        leadership(settings, token) as lock,  # a standby waits here
        (beside or _nothing)(service, settings),
    ):
        bot = StorybotBot(settings, service)
        try:
            async with bot:
                await _while_held(bot, bot.start(token), lock)
        except discord.LoginFailure:
            raise StorybotError("Discord refused the token (DISCORD_TOKEN): check it in the developer portal") from None
        except (aiohttp.ClientConnectionError, discord.GatewayNotFound, TimeoutError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StorybotError(f"cannot reach the Discord API at {settings.discord_api_base}: {reason}") from None
        finally:
            with contextlib.suppress(Exception):
                await bot.close()


async def _while_held(bot: StorybotBot, running: Awaitable[None], lock: GatewayLock | None) -> None:
    """Run the client; with a gateway lock, only for as long as it is held: a leader that lost it (the
    database restarted and another replica took it) disconnects and stops, rather than act twice."""
    if lock is None:
        await running
        return
    client = asyncio.ensure_future(running)
    watch = asyncio.create_task(lock.held())
    try:
        done, _ = await asyncio.wait({client, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not client.done():
            await bot.close()  # disconnects: `start` returns
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client
    if client in done:
        client.result()  # the client's own error, if it stopped on one
        return
    raise StorybotError("another replica holds the Discord gateway now: this one stopped (start it again to stand by)")
