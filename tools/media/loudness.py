"""Loudness measurement: loudnorm's first pass (to feed the second) and an EBU R128 check.

Two-pass loudnorm lands within a fraction of an LU of the target; one pass on speech missed by
more than 1 LU on this machine (LAB_NOTES), so the final cut always measures first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from tools.errors import MediaError
from tools.media.ffmpeg import run_ffmpeg

TARGET_LUFS = -14.0
TARGET_TP = -2.0  # aim under the -1.0 dBTP ceiling: AAC encoding adds a few tenths
TARGET_LRA = 11.0


class LoudnormStats(BaseModel):
    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


class Loudness(BaseModel):
    integrated_lufs: float
    true_peak_dbtp: float
    lra: float


def _parse_loudnorm(log: str) -> LoudnormStats:
    blocks = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", log)
    if not blocks:
        raise MediaError("loudness analysis printed no measurement")
    raw = json.loads(blocks[-1])
    values = {
        k: float(v) if v not in ("-inf", "inf") else -70.0 for k, v in raw.items() if k in LoudnormStats.model_fields
    }
    return LoudnormStats(**values)


def loudnorm_measure_filter() -> str:
    return f"loudnorm=I={TARGET_LUFS}:TP={TARGET_TP}:LRA={TARGET_LRA}:print_format=json"


def loudnorm_apply_filter(m: LoudnormStats) -> str:
    return (
        f"loudnorm=I={TARGET_LUFS}:TP={TARGET_TP}:LRA={TARGET_LRA}:measured_I={m.input_i}:"
        f"measured_TP={m.input_tp}:measured_LRA={m.input_lra}:measured_thresh={m.input_thresh}:"
        f"offset={m.target_offset}:linear=true,aresample=48000"
    )


async def measure_loudnorm(inputs: Sequence[str | Path], audio_graph: str, label: str) -> LoudnormStats:
    """Run an audio-only graph ending in `[label]` through loudnorm's analysis pass."""
    graph = f"{audio_graph};[{label}]{loudnorm_measure_filter()}[measured]"
    _, log = await run_ffmpeg([*inputs, "-filter_complex", graph, "-map", "[measured]", "-f", "null", "-"])
    return _parse_loudnorm(log)


async def measure_file(path: Path) -> Loudness:
    """EBU R128 integrated loudness, true peak and range of a file's audio, as ebur128 reports them."""
    _, log = await run_ffmpeg(["-nostats", "-i", path, "-vn", "-af", "ebur128=peak=true", "-f", "null", "-"])
    summary = log[log.rfind("Summary:") :]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    lra = re.search(r"LRA:\s+(-?[\d.]+) LU", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if not (i and lra and peak):
        raise MediaError(f"{path.name}: ebur128 printed no loudness summary")

    def num(m: re.Match[str]) -> float:
        return -70.0 if m.group(1) == "-inf" else float(m.group(1))

    return Loudness(integrated_lufs=num(i), true_peak_dbtp=num(peak), lra=num(lra))
