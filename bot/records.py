"""What the bot must remember across restarts and replicas (SQLAlchemy Core).

The job table (JobService) knows jobs; this knows where they live in Discord: the status message
to keep editing, the interaction token and when it was issued (it dies after 15 minutes), which
messages asked for an approval (so a reply to one of them steers the right job), and whether the
video was delivered (so a restart, or the replica that takes over the gateway, never posts it twice).

On one box (the default) they are kept in `data/bot.sqlite`; with a shared database
(STORYBOT_DATABASE_URL) in its `bot_posts` and `bot_prompts` tables (graph/tables.py, migration
0003), so that every replica of the bot sees the same rows.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Engine, MetaData, Table, func, or_, select, update

from graph.api import Settings, bot_posts, bot_prompts, engine_for, is_postgres, sqlite_engine, upsert


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
    delivered_message_id: int | None = None  # 0 while a delivery is claimed and being posted


def _sqlite_file(path: Path) -> tuple[Engine, Table, Table]:
    """`bot.sqlite` with the tables of earlier versions (named `posts` and `approval_messages`, made by
    sqlite-utils with the same columns), made where missing."""
    engine = sqlite_engine(path)
    metadata = MetaData()
    posts = bot_posts.to_metadata(metadata, name="posts")
    prompts = bot_prompts.to_metadata(metadata, name="approval_messages")
    metadata.create_all(engine, checkfirst=True)
    return engine, posts, prompts


class Records:
    def __init__(self, path: Path, engine: Engine | None = None) -> None:
        """The records in the SQLite file `path`, or, given a shared database's `engine`, in its tables."""
        if engine is None:
            self.engine, self.posts, self.prompts = _sqlite_file(path)
        else:
            self.engine, self.posts, self.prompts = engine, bot_posts, bot_prompts

    @classmethod
    def of(cls, settings: Settings) -> Records:
        """The configured place: the shared database's tables, else `DATA_DIR/bot.sqlite`."""
        path = settings.data_dir / "bot.sqlite"
        return cls(path, engine_for(settings)) if is_postgres(settings) else cls(path)

    def save(self, post: Post) -> None:
        row = {**post.model_dump(), "auto_approve": int(post.auto_approve)}
        sql = upsert(self.engine, self.posts).values(row)
        with self.engine.begin() as db:
            db.execute(sql.on_conflict_do_update(index_elements=["job_id"], set_={k: sql.excluded[k] for k in row}))

    def post(self, job_id: str) -> Post | None:
        with self.engine.connect() as db:
            row = db.execute(select(self.posts).where(self.posts.c.job_id == job_id)).mappings().first()
        return Post.model_validate(dict(row)) if row else None

    def all_posts(self) -> list[Post]:
        with self.engine.connect() as db:
            return [Post.model_validate(dict(r)) for r in db.execute(select(self.posts)).mappings()]

    def undelivered(self) -> list[Post]:
        """Posts whose video is not (or not known to be) delivered: what a restart looks at."""
        column = self.posts.c.delivered_message_id
        with self.engine.connect() as db:
            rows = db.execute(select(self.posts).where(or_(column.is_(None), column == 0))).mappings()
            return [Post.model_validate(dict(r)) for r in rows]

    def update(self, job_id: str, **fields: object) -> None:
        with self.engine.begin() as db:
            db.execute(update(self.posts).where(self.posts.c.job_id == job_id).values(fields))

    def claim_delivery(self, job_id: str) -> bool:
        """Mark the job as being delivered; False if it already was (compare-and-set, so never twice)."""
        sql = (
            update(self.posts)
            .where(self.posts.c.job_id == job_id, self.posts.c.delivered_message_id.is_(None))
            .values(delivered_message_id=0)
        )
        with self.engine.begin() as db:
            return db.execute(sql).rowcount == 1

    def remember_prompt(self, message_id: int, job_id: str, interrupt_id: str) -> None:
        row = {"message_id": message_id, "job_id": job_id, "interrupt_id": interrupt_id, "created": time.time()}
        sql = upsert(self.engine, self.prompts).values(row)
        with self.engine.begin() as db:
            db.execute(sql.on_conflict_do_update(index_elements=["message_id"], set_={k: sql.excluded[k] for k in row}))

    def prompt_posted(self, interrupt_id: str) -> bool:
        sql = select(func.count()).select_from(self.prompts).where(self.prompts.c.interrupt_id == interrupt_id)
        with self.engine.connect() as db:
            return int(db.execute(sql).scalar_one()) > 0

    def prompt(self, message_id: int) -> tuple[str, str] | None:
        """(job id, interrupt id) of the approval a message asked for."""
        sql = select(self.prompts.c.job_id, self.prompts.c.interrupt_id).where(self.prompts.c.message_id == message_id)
        with self.engine.connect() as db:
            row = db.execute(sql).first()
        return (str(row[0]), str(row[1])) if row else None
