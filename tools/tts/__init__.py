"""The narration voice: one `Voice` seam over Piper, espeak-ng, Edge TTS, ElevenLabs and recordings."""

from tools.tts.base import Voice, VoiceInfo
from tools.tts.catalogue import Chosen, VoiceRequest, catalogue, get_voice, resolve, voice_for_audio
from tools.tts.elevenlabs import synthesize_elevenlabs
from tools.tts.espeak import list_voices, speaking_rate, spoken_seconds, synthesize
from tools.tts.recording import from_recording
from tools.tts.speech import Speech

__all__ = [
    "Chosen",
    "Speech",
    "Voice",
    "VoiceInfo",
    "VoiceRequest",
    "catalogue",
    "from_recording",
    "get_voice",
    "list_voices",
    "resolve",
    "speaking_rate",
    "spoken_seconds",
    "synthesize",
    "synthesize_elevenlabs",
    "voice_for_audio",
]
