"""Publishing finished videos to YouTube, TikTok and Instagram, with the AI-content label on by default.

`base` (the seam's types), one module per site (`youtube`, `tiktok`, `instagram`, each a `ROW`),
`registry` (the rows by name), `accounts` (linked accounts, owner-only files), `ledger` (durable
publication records), `http` (the shared client rules), `run` (checks first, then uploads).
"""

from tools.publish.base import Choice, PlatformRefused, Privacy, Publication, Texts
from tools.publish.http import Unreachable
from tools.publish.ledger import Ledger
from tools.publish.registry import PLATFORMS, platform, targets
from tools.publish.run import Outcome, account_for, measure, plan_all, publish_all

__all__ = [
    "PLATFORMS",
    "Choice",
    "Ledger",
    "Outcome",
    "PlatformRefused",
    "Privacy",
    "Publication",
    "Texts",
    "Unreachable",
    "account_for",
    "measure",
    "plan_all",
    "platform",
    "publish_all",
    "targets",
]
