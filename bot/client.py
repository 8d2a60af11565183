"""The Discord client: connects through `DISCORD_API_BASE`, registers commands and persistent buttons,
and recovers jobs after a restart. Run it with `storybot bot`.
"""

from __future__ import annotations

import contextlib
import logging

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.commands import VideoCommands
from bot.conductor import Conductor
from bot.records import Records
from bot.views import DYNAMIC_ITEMS
from graph.api import BadInput, JobService, Settings, StorybotError

log = logging.getLogger("storybot.bot")
DISCORD_API = "https://discord.com/api/v10"


def _ids(text: str) -> set[int]:
    try:
        return {int(part) for part in text.replace(" ", "").split(",") if part}
    except ValueError:
        raise BadInput(f"not a comma-separated list of ids: {text!r}") from None


class StorybotBot(commands.Bot):
    def __init__(self, settings: Settings, service: JobService) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice channels: no warnings
        intents = discord.Intents.default()
        intents.message_content = True  # replies to approval messages carry the reviewer's note
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None,
                         allowed_mentions=discord.AllowedMentions.none())
        self.settings, self.service = settings, service
        self.records = Records(settings.data_dir / "bot.sqlite")
        self.conductor = Conductor(self, service, self.records, settings)
        self.guild_ids = _ids(settings.guild_ids)
        self.channel_ids = _ids(settings.allowed_channel_ids)

    def place_allowed(self, guild_id: int | None, channel_id: int | None) -> bool:
        if self.guild_ids and guild_id not in self.guild_ids:
            return False
        return not self.channel_ids or channel_id in self.channel_ids

    async def setup_hook(self) -> None:
        # A plain Client opens its default gateway without asking; behind a REST proxy the gateway
        # address must come from that API, as AutoShardedClient would ask.
        _shards, url, _limit = await self.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await self.add_cog(VideoCommands(self))
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        if self.guild_ids:
            for guild_id in self.guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        await self.conductor.recover()

    async def on_ready(self) -> None:
        log.info("connected as %s (%s servers)", self.user, len(self.guilds))

    async def close(self) -> None:
        await self.conductor.close()
        await super().close()


async def run_bot(settings: Settings) -> None:
    """Until the bot is stopped; one clear error when the token is missing or the API cannot be reached."""
    if settings.discord_token is None:
        raise BadInput("DISCORD_TOKEN is not set: put the bot's token in the environment or .env")
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    async with JobService.open(settings) as service:
        bot = StorybotBot(settings, service)
        try:
            async with bot:
                await bot.start(settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            raise StorybotError("Discord refused the token (DISCORD_TOKEN): check it in the developer portal") \
                from None
        except (aiohttp.ClientConnectionError, discord.GatewayNotFound, TimeoutError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StorybotError(f"cannot reach the Discord API at {settings.discord_api_base}: {reason}") from None
        finally:
            with contextlib.suppress(Exception):
                await bot.close()
