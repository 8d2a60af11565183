"""The media engine: FFmpeg plumbing, probing, voice-to-shot timing, subtitles, pictures and motion,
the final cut, loudness, upload copies and what a render leaves behind. No network, no models."""
