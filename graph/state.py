"""Job state carried by the graph and checkpointed after every step.

Only plain data and file names relative to the job folder live here (never bytes): the
checkpoint file grows by the state size at every step.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, Field, TypeAdapter, field_validator, model_validator

from tools.errors import BadInput
from tools.llm import StoryIdea
from tools.llm.schemas import PlatformMeta
from tools.media.outputs import Artifacts, SubtitleMeta, VoiceMeta
from tools.models import Aspect
from tools.text import clean_script
from tools.visuals import Credit

STAGES = [
    "collect_ideas",
    "story_ideas",
    "pick_idea",
    "write_script",
    "revise_script",
    "approve_script",
    "voice",
    "subtitles",
    "plan_scenes",
    "keyframes",
    "vision_guidance",
    "approve_keyframes",
    "animate",
    "post_produce",
    "deliver",
]
APPROVALS = ("pick_idea", "approve_script", "approve_keyframes")
IDEA_STAGES = ("collect_ideas", "story_ideas", "pick_idea")
MAX_PROMPT_CHARS = 1000
MIN_DURATION, MAX_DURATION = 5.0, 180.0
LENGTH_TOLERANCE = 0.08  # a draft spoken within 8% of the requested duration fits it


class JobRequest(BaseModel):
    """What a front end asks for; validated before any job or file exists."""

    prompt: str = ""  # empty only with `ideas`: the ideas come from the configured sources
    script_text: str | None = None
    ideas: bool = False  # collect, score and offer ideas before writing (else the prompt is the idea)
    duration: float = Field(45.0)
    aspect: Aspect = Aspect.portrait
    voice: str | None = None  # a catalogue name (provider:id) or bare id; None: chosen by language
    language: str | None = None  # the script's language (ISO 639-1); None: detected
    seed: int = 0
    visuals: Literal["auto", "cards", "stock", "images", "gpu"] = "auto"  # tools/visuals
    media: list[str] = []  # the user's own pictures and clips, one per shot in order (absolute paths)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            return ""
        if len(value) > MAX_PROMPT_CHARS * 4:
            raise BadInput(f"the prompt is too long: {len(value)} characters (at most {MAX_PROMPT_CHARS})")
        try:
            text = " ".join(clean_script(value).split())
        except BadInput:
            raise BadInput("the prompt is empty: say what the video should be about") from None
        if len(text) > MAX_PROMPT_CHARS:
            raise BadInput(f"the prompt is too long: {len(text)} characters (at most {MAX_PROMPT_CHARS})")
        return text

    @field_validator("script_text")
    @classmethod
    def _script(cls, value: str | None) -> str | None:
        return clean_script(value) if value is not None else None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float) -> float:
        if not MIN_DURATION <= value <= MAX_DURATION:
            raise BadInput(f"duration must be {MIN_DURATION:.0f} to {MAX_DURATION:.0f} seconds, not {value:g}")
        return value

    @model_validator(mode="after")
    def _something_to_write(self) -> JobRequest:
        if not self.prompt and not self.ideas:
            raise BadInput("the prompt is empty: say what the video should be about")
        return self

    @property
    def idea_stages(self) -> bool:
        """Whether ideas are collected and picked: asked for, or nothing else to write from."""
        return self.script_text is None and (self.ideas or not self.prompt)


# approvals ------------------------------------------------------------------------------------
# What each approval shows and which answers it takes. The nodes interrupt with one of these, the
# job table keeps it, and the bot and the CLI read it; a reply is parsed by the approval it answers,
# so a chat reply and `storybot answer` follow the same rules.

Action = Literal["approve", "pick", "revise", "replace", "regenerate", "reroll", "cancel"]
REPLACE_WORDS = 40  # a reply this long is a script, not a note
APPROVE_WORDS = frozenset({"approve", "approved", "ok", "okay", "yes", "y", "lgtm", "go", "ship it", "👍", "✅", "👌"})
CANCEL_WORDS = frozenset({"cancel", "stop"})
REGENERATE_WORDS = frozenset({"regenerate", "regen", "new draft", "another draft"})
LONGER, SHORTER = "make it longer", "make it shorter"
WHAT = {
    "pick_idea": "picking an idea",
    "approve_script": "the script approval",
    "approve_keyframes": "the keyframe approval",
}
LENGTH_WORDS = {"longer": LONGER, LONGER: LONGER, "shorter": SHORTER, SHORTER: SHORTER}


class Answer(BaseModel):
    """A reply to an approval, from a button, a modal, a chat reply or `storybot answer`."""

    action: Action
    index: int | None = None  # pick: which idea (0-based)
    note: str | None = None  # revise: what to change
    text: str | None = None  # replace: the new script
    shots: list[int] = []  # reroll: 1-based shot numbers
    media: list[str] = []  # reroll: the user's pictures or clips for those shots, in order


MAX_NUMBER_DIGITS = 4  # no approval has 10,000 ideas or shots; a longer "number" is not one


def _numbers(text: str) -> list[int] | None:
    """'2', '2, 4', '#3', 'shots 2 and 4' -> the numbers; None when the text says anything else.
    Only ASCII digits count (`str.isdigit` also takes '²', which `int` refuses), and at most a few."""
    words = re.sub(r"[,#&]|\band\b|\bshots?\b|\bidea\b|\bnumber\b", " ", text.lower()).split()
    number = re.compile(rf"[0-9]{{1,{MAX_NUMBER_DIGITS}}}")
    return sorted({int(w) for w in words}) if words and all(number.fullmatch(w) for w in words) else None


def _verb(text: str) -> tuple[str, str]:
    """('revise', 'the rest') when a reply starts with an answer's name, as `storybot answer` writes it."""
    head, _, rest = text.strip().partition(" ")
    return head.lower().rstrip(":"), rest.strip()


class ApprovalBase(BaseModel):
    """What every approval has: the question, the answers it takes, and the one reply parser."""

    approval: str

    @property
    def actions(self) -> frozenset[str]:
        raise NotImplementedError

    def question(self) -> str:
        raise NotImplementedError

    def hints(self) -> list[str]:
        """The answers that fit, as `storybot answer JOB ...` takes them (and a chat reply too)."""
        raise NotImplementedError

    def fits(self) -> str:
        """The answers that fit, in words that read right in chat and on the command line alike."""
        raise NotImplementedError

    def refusal(self, what: str) -> BadInput:
        return BadInput(f"{what}: answer with {self.fits()}")

    def parse(self, text: str, attachment: str | None = None) -> Answer:
        """A reply to this approval, as the natural thing: a .txt or 40+ words replaces the script,
        approve words approve, cancel cancels, and the approval's own rules do the rest."""
        if attachment is not None:
            return self.check(Answer(action="replace", text=attachment))
        raw = text.strip()  # a script keeps its line breaks; everything else is read as one line
        text = " ".join(raw.split())
        verb, rest = _verb(text)
        if verb in ("revise", "replace") and rest:
            own = raw.split(None, 1)[1]
            return self.check(
                Answer(action="revise", note=rest) if verb == "revise" else Answer(action="replace", text=own)
            )
        if len(text.split()) >= REPLACE_WORDS:
            return self.check(Answer(action="replace", text=raw))
        said = text.lower().rstrip("!.")
        if said in APPROVE_WORDS:
            return self.check(Answer(action="approve"))
        if said in CANCEL_WORDS:
            return self.check(Answer(action="cancel"))
        if said in REGENERATE_WORDS:
            return self.check(Answer(action="regenerate"))
        if verb in ("pick", "reroll") and (numbers := _numbers(rest)):
            return self.check(self._numbered(numbers, verb))
        if (numbers := _numbers(text)) is not None:
            return self.check(self._numbered(numbers, None))
        return self.check(self._free_text(text))

    def _numbered(self, numbers: list[int], verb: str | None) -> Answer:
        raise self.refusal("numbers do not answer this approval")

    def _free_text(self, text: str) -> Answer:
        raise self.refusal(f"I cannot tell what {text[:60]!r} should do" if text else "the reply is empty")

    def check(self, answer: Answer) -> Answer:
        """The answer itself, when it fits this approval; otherwise BadInput naming those that fit."""
        if answer.action not in self.actions:
            raise self.refusal(f"{WHAT[self.approval]} does not take {answer.action}")
        if answer.action == "replace" and not (answer.text or "").strip():
            raise BadInput("the replacement script is empty")
        if answer.action == "revise" and not (answer.note or "").strip():
            raise BadInput('say what to change: revise "NOTE"')
        return answer


class IdeaApproval(ApprovalBase):
    """Which idea to write (the idea stages ran): a number picks, approve takes the first."""

    approval: Literal["pick_idea"] = "pick_idea"
    ideas: list[StoryIdea]

    @property
    def actions(self) -> frozenset[str]:
        return frozenset({"pick", "approve", "replace", "cancel"})

    def question(self) -> str:
        return "Which idea should I write? Pick one, or approve the first."

    def hints(self) -> list[str]:
        return [f"pick N (1 to {len(self.ideas)})", "approve", "replace FILE (your own script)", "cancel"]

    def fits(self) -> str:
        return (
            f"the number of an idea (1 to {len(self.ideas)}), ok (the first), your own script (a .txt file "
            f"or {REPLACE_WORDS}+ words), or cancel"
        )

    def _numbered(self, numbers: list[int], verb: str | None) -> Answer:
        if len(numbers) != 1 or verb == "reroll":
            raise self.refusal("pick one idea")
        return Answer(action="pick", index=numbers[0] - 1)

    def check(self, answer: Answer) -> Answer:
        answer = super().check(answer)
        if answer.action == "pick" and not (answer.index is not None and 0 <= answer.index < len(self.ideas)):
            raise BadInput(f"pick a number from 1 to {len(self.ideas)}")
        return answer


class ScriptApproval(ApprovalBase):
    """A draft to approve; a short reply is what to change; its spoken length against the target."""

    approval: Literal["approve_script"] = "approve_script"
    version: int
    script: str
    words: int
    target_seconds: float
    spoken_seconds: float | None = None  # estimated with the narrating voice's measured rate
    own_script: bool = False
    summary: str = ""  # how this version came to be (a revision's one line)
    diff: str = ""
    previous_script: str = ""
    writer_notice: str = ""  # who wrote the draft when the user should know (the template writer says so)

    @property
    def actions(self) -> frozenset[str]:
        base = {"approve", "revise", "replace", "cancel"}
        return frozenset(base if self.own_script else base | {"regenerate"})

    @property
    def off_length(self) -> Literal["short", "long"] | None:
        """'short' or 'long' when the draft misses the target by more than the writer's tolerance."""
        if self.spoken_seconds is None:
            return None
        ratio = self.spoken_seconds / self.target_seconds
        return "short" if ratio < 1 - LENGTH_TOLERANCE else "long" if ratio > 1 + LENGTH_TOLERANCE else None

    def length_note(self) -> str:
        """'about 21 s, you asked for 45 s' (or just 'about 44 s' when it is close)."""
        if self.spoken_seconds is None:
            return f"for about {self.target_seconds:g} s"
        said = f"about {self.spoken_seconds:.0f} s"
        return f"{said}, you asked for {self.target_seconds:g} s" if self.off_length else said

    def question(self) -> str:
        return f"Approve script version {self.version}? ({self.length_note()})"

    def hints(self) -> list[str]:
        out = ["approve", 'revise "NOTE"', "longer", "shorter", "replace FILE"]
        return [*out, *(["regenerate"] if not self.own_script else []), "cancel"]

    def fits(self) -> str:
        again = "" if self.own_script else ", regenerate"
        return (
            f"ok, what to change (a note), longer, shorter, your own script (a .txt file or {REPLACE_WORDS}+ "
            f"words){again}, or cancel"
        )

    def check(self, answer: Answer) -> Answer:
        if answer.action == "regenerate" and self.own_script:
            raise BadInput(
                "this is your own script, so there is nothing to regenerate: replace it (a .txt file, "
                f"{REPLACE_WORDS}+ words, or replace FILE) or say what to change"
            )
        return super().check(answer)

    def _free_text(self, text: str) -> Answer:
        if not text:
            return super()._free_text(text)
        return Answer(action="revise", note=LENGTH_WORDS.get(text.lower().rstrip("!."), text))


class ShotCaption(BaseModel):
    number: int
    text: str


class ShotVerdict(BaseModel):
    """The vision model's check of one keyframe (shown beside it)."""

    shot: int
    parsed: bool = False
    score: float | None = None  # 0-10: how well the picture shows the shot
    missing: list[str] = Field(default_factory=list)
    unwanted: list[str] = Field(default_factory=list)
    adherence: float | None = None
    quality: float | None = None
    critique: str | None = None
    consistent: bool | None = None


class KeyframeApproval(ApprovalBase):
    """The drawn keyframes: approve, or name the shots to draw again (a .txt still replaces the script)."""

    approval: Literal["approve_keyframes"] = "approve_keyframes"
    keyframes: list[str]  # absolute paths, in shot order
    shots: list[ShotCaption]
    verdicts: list[ShotVerdict] = []

    @property
    def actions(self) -> frozenset[str]:
        return frozenset({"approve", "reroll", "replace", "cancel"})

    def question(self) -> str:
        if len(self.shots) == 1:
            return "Approve this keyframe, or re-roll it?"
        return f"Approve these {len(self.shots)} keyframes, or re-roll some shots?"

    def hints(self) -> list[str]:
        return [f"reroll N[,M] (1 to {len(self.shots)})", "approve", "replace FILE", "cancel"]

    def fits(self) -> str:
        return (
            f"ok, the shots to draw again (numbers 1 to {len(self.shots)}), a new script (a .txt file or "
            f"{REPLACE_WORDS}+ words), or cancel"
        )

    def _numbered(self, numbers: list[int], verb: str | None) -> Answer:
        if verb == "pick":
            raise self.refusal("there is no idea to pick here")
        return Answer(action="reroll", shots=numbers)

    def check(self, answer: Answer) -> Answer:
        answer = super().check(answer)
        count = len(self.shots)
        if answer.action == "reroll" and (not answer.shots or any(not 1 <= n <= count for n in answer.shots)):
            raise BadInput(f"re-roll shot numbers from 1 to {count}")
        if answer.media and len(answer.media) != len(answer.shots):
            raise BadInput(
                f"{len(answer.media)} pictures for {len(answer.shots)} shot numbers: give one shot number per picture"
            )
        return answer


Approval = Annotated[IdeaApproval | ScriptApproval | KeyframeApproval, Field(discriminator="approval")]
APPROVAL: TypeAdapter[IdeaApproval | ScriptApproval | KeyframeApproval] = TypeAdapter(Approval)


class JobResult(BaseModel):
    """What a finished job gives its front ends, so none of them re-opens `metadata.json`."""

    artifacts: Artifacts
    platforms: PlatformMeta | None = None  # title, description and hashtags per platform
    credits: list[Credit] = []  # stock authors to credit

    @model_validator(mode="before")
    @classmethod
    def _bare_artifacts(cls, data: Any) -> Any:
        """A job finished before results were typed kept only its artifact paths."""
        return {"artifacts": data} if isinstance(data, dict) and "final_video" in data else data


class RevisionRequest(TypedDict, total=False):
    """What the reviewer asked of the next draft: one of a note, their own text, or a fresh draft."""

    note: str
    text: str
    regenerate: bool


def _merge(left: dict[str, str], right: dict[str, str]) -> dict[str, str]:
    return {**left, **right}


class JobState(TypedDict, total=False):
    """The graph's state. Values are JSON data or pydantic models the checkpointer is allowed to
    revive (`CHECKPOINT_MODELS`); readers validate models (`JobRequest.model_validate`), so a
    checkpoint written before a model existed still reads."""

    job_id: str
    request: JobRequest
    ideas: list[StoryIdea]
    idea: StoryIdea
    script_version: int
    script_file: str  # the draft under review: script.vN.txt
    revision: RevisionRequest  # the pending revise/replace/regenerate request
    voice: VoiceMeta
    subtitles: SubtitleMeta
    shot_seeds: dict[str, int]  # per-shot picture seed, bumped by a re-roll
    reroll: list[int]  # 0-based shots the next keyframes run must redraw
    shot_media: dict[str, str]  # 0-based shot -> the user's own file that replaces its picture
    keyframes: list[str]
    clips: list[str]
    outcome: Literal["done", "cancelled"]
    result: JobResult
    providers: Annotated[dict[str, str], _merge]
    notices: Annotated[list[str], operator.add]


# every class of ours the checkpointer may revive (models and the enums inside them); anything else
# comes back as plain data, with a warning on stderr
CHECKPOINT_MODELS: tuple[type, ...] = (
    Aspect,
    IdeaApproval,
    ScriptApproval,
    KeyframeApproval,
    JobRequest,
    StoryIdea,
    VoiceMeta,
    SubtitleMeta,
    JobResult,
)
