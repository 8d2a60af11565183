"""The bot's side of signed links (tools/links.py): which links a finished job's message carries.
With remote storage they are the store's presigned URLs, and no public address is needed.

The files behind them are served by the service's HTTP app (service/files.py), which `storybot bot`
starts beside the client when `STORYBOT_PUBLIC_URL` is set: one HTTP server per deployment.
"""

from __future__ import annotations

from graph.api import ARTIFACTS, JobRecord, Links, Settings, is_remote, link_secret, links_storage


def job_links(links: Links, record: JobRecord) -> list[tuple[str, str]]:
    """(name, signed URL) of each file a finished job has that links may serve."""
    if record.status != "done" or record.result is None:
        return []
    return [(name, links.url(record.job_id, name)) for name in ARTIFACTS]


def links_from(settings: Settings) -> Links | None:
    """The link maker, when the bot has a public address to put in links."""
    if not settings.public_url and not is_remote(settings):  # remote storage presigns its own links
        return None
    return Links(link_secret(settings), settings.public_url or "", settings.link_ttl, links_storage(settings))
