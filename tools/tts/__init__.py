"""The narration voice: espeak-ng synthesis offline, or the user's own recording, timed word by word."""

from tools.tts.elevenlabs import synthesize_elevenlabs
from tools.tts.espeak import list_voices, speaking_rate, spoken_seconds, synthesize
from tools.tts.recording import from_recording
from tools.tts.speech import Speech

__all__ = ["Speech", "from_recording", "list_voices", "speaking_rate", "spoken_seconds", "synthesize",
           "synthesize_elevenlabs"]
