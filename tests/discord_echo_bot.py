"""A tiny real discord.py bot run as a subprocess against tests/fake_discord.py, the way `storybot bot` is.

It reads DISCORD_TOKEN and DISCORD_API_BASE, points `Route.BASE` there, asks `GET /gateway/bot` for the
websocket URL (a plain Client would otherwise open wss://gateway.discord.gg) and offers `/echo text`.
"""

from __future__ import annotations

import os
from typing import Any

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket


class EchoBot(commands.Bot):
    async def setup_hook(self) -> None:
        _, url, _ = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

        @self.tree.command(name="echo", description="Echo text back")
        async def echo(interaction: discord.Interaction[Any], text: str) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content=f"echo: {text}")

        await self.tree.sync()


def main() -> None:
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
    bot = EchoBot(
        command_prefix="!",
        intents=discord.Intents.default(),
        guild_ready_timeout=0.05,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    bot.run(os.environ["DISCORD_TOKEN"], log_handler=None)


if __name__ == "__main__":
    main()
