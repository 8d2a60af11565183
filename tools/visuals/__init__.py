"""Visual sources: one seam (`VisualSource`), one file per source (cards, stock via Pexels and
Pixabay, a hosted Images API, SDXL on a GPU, the user's own media), a registry that picks one.

Every source answers a planned shot with a keyframe still, or a clip plus credits; a shot a source
cannot serve falls back to a card with a notice, so the job always goes on.
"""

from tools.visuals.base import (
    CHOICES,
    Choice,
    Credit,
    Job,
    Miss,
    Opening,
    ShotBrief,
    SourceName,
    Visual,
    VisualError,
    VisualSource,
)
from tools.visuals.produce import (
    ShotRecord,
    brief,
    clips_of,
    make_visuals,
    read_records,
    record,
    still_of,
    write_records,
)
from tools.visuals.registry import available, label, open_source, parse_choice, resolve

__all__ = [
    "CHOICES",
    "Choice",
    "Credit",
    "Job",
    "Miss",
    "Opening",
    "ShotBrief",
    "ShotRecord",
    "SourceName",
    "Visual",
    "VisualError",
    "VisualSource",
    "available",
    "brief",
    "clips_of",
    "label",
    "make_visuals",
    "open_source",
    "parse_choice",
    "read_records",
    "record",
    "resolve",
    "still_of",
    "write_records",
]
