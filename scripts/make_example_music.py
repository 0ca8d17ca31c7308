#!/usr/bin/env python3
"""Writes examples/music/hold.wav: a short, gentle chord melody for the example config.

Deterministic (no randomness, fixed sample rate and amplitudes), so running it
again gives the same bytes. It is deliberately NOT in the telephone format
(16 kHz stereo 16-bit instead of 8 kHz mono) so that the engine's hold-music
loader has to down-mix and resample it.

Usage: python scripts/make_example_music.py [OUTPUT.wav]
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
SECONDS_PER_CHORD = 1.0
# I - vi - IV - V in C major, voiced softly around middle C (frequencies in Hz).
CHORDS: tuple[tuple[float, ...], ...] = (
    (261.63, 329.63, 392.00),  # C
    (220.00, 261.63, 329.63),  # A minor
    (174.61, 220.00, 261.63),  # F
    (196.00, 246.94, 293.66),  # G
)
# One melody note per half chord, on top of the harmony.
MELODY: tuple[float, ...] = (523.25, 587.33, 523.25, 440.00, 440.00, 349.23, 392.00, 493.88)


def _envelope(n: int) -> np.ndarray:
    """A soft attack and a long release, so notes never click."""
    t = np.arange(n) / RATE
    attack = np.minimum(1.0, t / 0.08)
    release = np.exp(-2.5 * t / (n / RATE))
    return attack * release


def render() -> np.ndarray:
    """The stereo signal as int16, shape (samples, 2)."""
    chord_len = int(RATE * SECONDS_PER_CHORD)
    note_len = chord_len // 2
    t_chord = np.arange(chord_len) / RATE
    t_note = np.arange(note_len) / RATE
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for i, chord in enumerate(CHORDS):
        pad = sum(np.sin(2 * np.pi * f * t_chord) for f in chord) / len(chord)
        pad = pad * _envelope(chord_len) * 0.25
        tune = np.concatenate(
            [np.sin(2 * np.pi * MELODY[2 * i + k] * t_note) * _envelope(note_len) for k in (0, 1)]
        )
        tune = tune * 0.2
        # Pad slightly left, melody slightly right: a gentle stereo image.
        left.append(0.6 * pad + 0.4 * tune)
        right.append(0.4 * pad + 0.6 * tune)
    stereo = np.stack([np.concatenate(left), np.concatenate(right)], axis=1)
    return np.round(stereo * 32767 * 1.8).astype("<i2")


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    out = Path(argv[1]) if len(argv) > 1 else root / "examples" / "music" / "hold.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = render()
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())
    print(f"wrote {out} ({samples.shape[0] / RATE:.1f} s, {out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
