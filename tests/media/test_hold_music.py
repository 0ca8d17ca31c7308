"""Hold music: encoded once, seamless loop, shared clock, default music, cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from huntgroup.engine.aio.music_library import MusicLibrary
from huntgroup.errors import MediaError
from huntgroup.media import g711
from huntgroup.media.g711 import Codec
from huntgroup.media.music import (
    FRAME_SAMPLES,
    HoldMusic,
    MusicCursor,
    SilenceSource,
    default_music,
    ringback_tone,
)


def _ramp(n: int) -> NDArray[np.int16]:
    return (np.arange(n) * 37 % 65536 - 32768).astype(np.int16)


@given(length=st.integers(1, 1000), start=st.integers(-5000, 5000), count=st.integers(1, 30))
def test_frames_are_cut_from_the_looped_stream(length: int, start: int, count: int) -> None:
    pcm = _ramp(length)
    music = HoldMusic(pcm, name="ramp")
    for codec in Codec:
        frames = [music.frame_at(start + i, codec) for i in range(count)]
        assert all(len(f) == FRAME_SAMPLES for f in frames)
        positions = (np.arange(start * FRAME_SAMPLES, (start + count) * FRAME_SAMPLES)) % length
        assert b"".join(frames) == g711.encode(pcm[positions], codec)
        assert music.frame_at(start + music.period_frames, codec) == frames[0]


def test_loop_of_odd_length_has_no_short_or_padded_frame() -> None:
    pcm = _ramp(1000)  # 6.25 frames
    music = HoldMusic(pcm, name="odd")
    assert music.period_frames == 25  # lcm(1000, 160) / 160
    stream = b"".join(music.frame_at(i, Codec.PCMU) for i in range(25))
    assert stream == g711.encode(np.tile(pcm, 4), Codec.PCMU)
    # Frame 6 crosses the end of the loop and continues with its start.
    assert music.frame_at(6, Codec.PCMU) == g711.encode(
        np.concatenate([pcm[960:], pcm[:120]]), Codec.PCMU
    )


def test_same_frame_object_is_shared_between_callers() -> None:
    music = HoldMusic(_ramp(4000), name="shared")
    a = music.cursor(Codec.PCMA, now=100.0, epoch=99.0)
    b = music.cursor(Codec.PCMA, now=100.0, epoch=99.0)
    assert a.next_frame() is b.next_frame()


def test_shared_clock_joins_mid_file() -> None:
    music = HoldMusic(_ramp(8000), name="clock")  # 1 s = 50 frames
    epoch = 1234.5
    assert HoldMusic.frame_index(now=epoch, epoch=epoch) == 0
    assert HoldMusic.frame_index(now=epoch + 0.019, epoch=epoch) == 0
    assert HoldMusic.frame_index(now=epoch + 0.02, epoch=epoch) == 1
    assert HoldMusic.frame_index(now=epoch + 0.06, epoch=epoch) == 3  # exact boundary
    first = music.cursor(Codec.PCMU, now=epoch + 0.0, epoch=epoch)
    for _ in range(37):
        first.next_frame()
    late = music.cursor(Codec.PCMU, now=epoch + 37 * 0.02 + 0.005, epoch=epoch)
    assert late.index == first.index == 37
    assert late.next_frame() == first.next_frame()
    # Joining after several loops lands at the same place in the music.
    again = music.cursor(Codec.PCMU, now=epoch + 3.0 + 38 * 0.02, epoch=epoch)
    assert again.next_frame() == music.frame_at(38, Codec.PCMU)


def test_cursor_skip_and_silence() -> None:
    music = HoldMusic(_ramp(2000), name="skip")
    cursor = MusicCursor(music, Codec.PCMU, 0)
    cursor.skip(5)
    assert cursor.next_frame() == music.frame_at(5, Codec.PCMU)
    silence = SilenceSource(Codec.PCMA)
    silence.skip(3)
    assert silence.next_frame() == b"\xd5" * 160
    assert SilenceSource(Codec.PCMU).next_frame() == b"\xff" * 160


def test_bad_pcm_is_refused() -> None:
    with pytest.raises(MediaError, match="no samples"):
        HoldMusic(np.zeros(0, dtype=np.int16), name="empty")
    with pytest.raises(MediaError, match="int16"):
        HoldMusic(np.zeros(10, dtype=np.float64), name="float")  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="int16"):
        HoldMusic(np.zeros((10, 2), dtype=np.int16), name="stereo")


def test_default_music_is_deterministic_pleasant_and_in_band() -> None:
    music = default_music()
    assert default_music() is music
    assert 10.0 <= music.duration <= 20.0
    pcm = g711.decode(
        b"".join(music.frame_at(i, Codec.PCMU) for i in range(music.period_frames)), Codec.PCMU
    ).astype(np.float64)
    peak = np.max(np.abs(pcm))
    assert 0.15 * 32768 < peak < 0.35 * 32768  # audible, far from clipping
    # Not silent for long: every second holds sound.
    seconds = pcm[: 8000 * int(music.duration)].reshape(-1, 8000)
    assert np.all(np.sqrt(np.mean(seconds**2, axis=1)) > 300)
    # Energy inside the telephone band, none near Nyquist (no harsh aliasing).
    spectrum = np.abs(np.fft.rfft(pcm)) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
    assert spectrum[(freqs > 3400)].sum() < 0.001 * spectrum.sum()
    # Seamless loop: no jump at the wrap-around larger than within the music.
    wrap = abs(pcm[0] - pcm[-1])
    assert wrap <= np.max(np.abs(np.diff(pcm)))
    # Computed without randomness: building it again gives the same bytes.
    rebuilt = default_music.__wrapped__()
    assert rebuilt is not music
    for i in range(music.period_frames):
        assert rebuilt.frame_at(i, Codec.PCMA) == music.frame_at(i, Codec.PCMA)


def test_ringback_tone_cadence() -> None:
    tone = ringback_tone()
    assert tone.duration == pytest.approx(5.0)
    pcm = g711.decode(
        b"".join(tone.frame_at(i, Codec.PCMU) for i in range(tone.period_frames)), Codec.PCMU
    )
    assert np.max(np.abs(pcm[:12000])) > 5000  # 1.5 s on
    assert np.max(np.abs(pcm[12100:])) == 0  # 3.5 s off
    with pytest.raises(MediaError):
        ringback_tone(frequency=5000)


def test_library_loads_each_file_once_and_reloads_a_changed_file(tmp_path: Path) -> None:
    calls: list[Path] = []

    def loader(path: Path) -> NDArray[np.int16]:
        calls.append(path)
        return np.asarray(sf.read(path, dtype="int16")[0])

    path = tmp_path / "moh.wav"
    sf.write(path, _ramp(800), 8000, subtype="PCM_16")
    library = MusicLibrary(loader)
    first = library.get(path)
    assert library.get(str(path)) is first
    assert library.get(tmp_path / "." / "moh.wav") is first
    assert len(calls) == 1
    assert library.get(None) is default_music()

    sf.write(path, _ramp(1600), 8000, subtype="PCM_16")  # the admin replaces the file
    second = library.get(path)
    assert second is not first
    assert second.samples == 1600
    library.retain([])
    assert len(library) == 0


def test_library_with_real_loader(tmp_path: Path) -> None:
    path = tmp_path / "moh.flac"
    sf.write(path, np.zeros((44100, 2)), 44100)
    music = MusicLibrary().get(path)
    assert music.samples == 8000
    assert music.frame_at(3, Codec.PCMA) == b"\xd5" * 160
    with pytest.raises(MediaError, match="cannot open hold music"):
        MusicLibrary().get(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("no")
    with pytest.raises(MediaError, match="not an audio file"):
        MusicLibrary().get(bad)
