"""What the bot must remember across restarts, kept with sqlite-utils in `data/bot.sqlite`.

The job table (JobService) knows jobs; this knows where they live in Discord: the status message
to keep editing, the interaction token and when it was issued (it dies after 15 minutes), which
messages asked for an approval (so a reply to one of them steers the right job), and whether the
video was delivered (so a restart never posts it twice).
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlite_utils
from pydantic import BaseModel


class Post(BaseModel):
    """A job's home in Discord."""

    job_id: str
    guild_id: int | None = None
    channel_id: int
    status_message_id: int | None = None
    application_id: int | None = None
    token: str | None = None  # the interaction token: edits go through it while it lives
    token_issued: float = 0.0
    upload_limit: int = 10 * 1024 * 1024
    auto_approve: bool = False
    delivered_message_id: int | None = None


class Records:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.posts = self.db.table("posts")
        self.prompts = self.db.table("approval_messages")
        if not self.posts.exists():
            self.posts.create(
                {
                    "job_id": str,
                    "guild_id": int,
                    "channel_id": int,
                    "status_message_id": int,
                    "application_id": int,
                    "token": str,
                    "token_issued": float,
                    "upload_limit": int,
                    "auto_approve": int,
                    "delivered_message_id": int,
                },
                pk="job_id",
                if_not_exists=True,
            )
        if not self.prompts.exists():
            self.prompts.create(
                {"message_id": int, "job_id": str, "interrupt_id": str, "created": float},
                pk="message_id",
                if_not_exists=True,
            )
            self.prompts.create_index(["interrupt_id"], if_not_exists=True)

    def save(self, post: Post) -> None:
        self.posts.upsert(post.model_dump(), pk="job_id")

    def post(self, job_id: str) -> Post | None:
        rows = list(self.posts.rows_where("job_id = ?", [job_id]))
        return Post.model_validate(rows[0]) if rows else None

    def all_posts(self) -> list[Post]:
        return [Post.model_validate(r) for r in self.posts.rows]

    def update(self, job_id: str, **fields: object) -> None:
        self.posts.update(job_id, fields)

    def claim_delivery(self, job_id: str) -> bool:
        """Mark the job as being delivered; False if it already was (compare-and-set, so never twice)."""
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE posts SET delivered_message_id = 0 WHERE job_id = ? AND delivered_message_id IS NULL", [job_id]
            )
        return cursor.rowcount == 1

    def remember_prompt(self, message_id: int, job_id: str, interrupt_id: str) -> None:
        self.prompts.upsert(
            {"message_id": message_id, "job_id": job_id, "interrupt_id": interrupt_id, "created": time.time()},
            pk="message_id",
        )

    def prompt_posted(self, interrupt_id: str) -> bool:
        return self.prompts.count_where("interrupt_id = ?", [interrupt_id]) > 0

    def prompt(self, message_id: int) -> tuple[str, str] | None:
        """(job id, interrupt id) of the approval a message asked for."""
        rows = list(self.prompts.rows_where("message_id = ?", [message_id]))
        return (rows[0]["job_id"], rows[0]["interrupt_id"]) if rows else None
