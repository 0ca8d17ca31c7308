"""Loading, down-mixing, resampling and converting audio files; odd files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from huntgroup.errors import MediaError
from huntgroup.media import audio, g711
from huntgroup.media.audio import check_music_file, convert_file, load_audio


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def _peak_hz(pcm: NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * audio.SAMPLE_RATE / pcm.size)


def _rms(x: NDArray[np.generic]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def _wav_header(rate: int, channels: int, frames: int = 4) -> bytes:
    """A 16-bit PCM WAV file written by hand, for headers soundfile refuses to write."""
    block = 2 * max(channels, 1)
    data = b"\x00" * (frames * block)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_stereo_float_wav_at_44100_keeps_a_440_hz_tone(tmp_path: Path) -> None:
    tone = _tone(440, 44100, 2.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone, tone], axis=1).astype(np.float32), 44100, subtype="FLOAT")
    pcm = load_audio(path)
    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    assert pcm.size == 16000
    assert abs(_peak_hz(pcm) - 440) <= 1
    # Amplitude kept: 0.5 full scale -> RMS 0.5/sqrt(2) * 32768.
    assert _rms(pcm[800:-800]) == pytest.approx(0.5 / np.sqrt(2) * 32768, rel=0.01)


def test_6_khz_tone_is_filtered_out_not_aliased(tmp_path: Path) -> None:
    # Dropping samples would fold 6 kHz to 2 kHz at full level; the low-pass removes it.
    tone = _tone(6000, 44100, 2.0)
    path = tmp_path / "high.wav"
    sf.write(path, np.stack([tone, tone], axis=1).astype(np.float32), 44100, subtype="FLOAT")
    pcm = load_audio(path)
    attenuation_db = 20 * np.log10(_rms(tone * 32768) / max(_rms(pcm[800:-800]), 1e-9))
    assert attenuation_db > 30


def test_flac_at_48000(tmp_path: Path) -> None:
    path = tmp_path / "music.flac"
    mix = np.stack([_tone(440, 48000, 1.5), _tone(6000, 48000, 1.5)], axis=1)
    sf.write(path, mix, 48000, subtype="PCM_16")
    pcm = load_audio(path)
    assert pcm.size == 12000
    assert abs(_peak_hz(pcm) - 440) <= 1
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    near_440 = spectrum[int(430 * pcm.size / 8000) : int(450 * pcm.size / 8000)].max()
    near_2000 = spectrum[int(1950 * pcm.size / 8000) : int(2050 * pcm.size / 8000)].max()
    assert 20 * np.log10(near_440 / near_2000) > 30  # no alias of 6 kHz at 8000 - 6000


def test_channels_are_averaged(tmp_path: Path) -> None:
    tone = _tone(440, 16000, 1.0)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([tone, -tone, np.zeros_like(tone)], axis=1), 16000, subtype="FLOAT")
    assert np.max(np.abs(load_audio(path))) <= 2  # left and right cancel out
    sf.write(path, np.stack([tone, np.zeros_like(tone)], axis=1), 16000, subtype="FLOAT")
    assert _rms(load_audio(path)[400:-400]) == pytest.approx(0.25 / np.sqrt(2) * 32768, rel=0.01)


def test_8k_mono_pcm16_is_read_unchanged(tmp_path: Path) -> None:
    samples = np.random.default_rng(7).integers(-32768, 32768, 4000).astype(np.int16)
    path = tmp_path / "exact.wav"
    sf.write(path, samples, 8000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), samples)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "DOUBLE"])
@pytest.mark.parametrize("rate", [11025, 22050, 32000, 96000])
def test_depths_and_rates(tmp_path: Path, subtype: str, rate: int) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, _tone(440, rate, 1.0), rate, subtype=subtype)
    pcm = load_audio(path)
    assert pcm.size == 8000
    assert abs(_peak_hz(pcm) - 440) <= 1


def test_ogg_and_mp3(tmp_path: Path) -> None:
    for name in ("x.ogg", "x.mp3"):
        path = tmp_path / name
        sf.write(path, _tone(440, 44100, 1.0).astype(np.float32), 44100)
        pcm = load_audio(path)
        assert abs(pcm.size - 8000) < 800  # compressed formats may pad a little
        assert abs(_peak_hz(pcm) - 440) <= 2


def test_unusual_rate_keeps_pitch(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    sf.write(path, _tone(440, 44101, 1.0), 44101, subtype="PCM_16")
    pcm = load_audio(path)
    assert abs(pcm.size - 8000) <= 1
    assert abs(_peak_hz(pcm) - 440) <= 1


def test_float_samples_beyond_full_scale_are_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(8000, 3.0), 8000, subtype="FLOAT")
    pcm = load_audio(path)
    assert pcm.max() == 32767
    sf.write(path, np.full(8000, -3.0), 8000, subtype="FLOAT")
    assert load_audio(path).min() == -32768


def _expect(path: Path, fragment: str) -> None:
    with pytest.raises(MediaError, match=fragment) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    with pytest.raises(MediaError, match=fragment):
        check_music_file(path)


def test_odd_files_give_media_errors(tmp_path: Path) -> None:
    _expect(tmp_path / "missing.wav", "no such file")
    _expect(tmp_path, "is a directory")

    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    _expect(text, "not an audio file")

    empty_file = tmp_path / "empty.wav"
    empty_file.write_bytes(b"")
    _expect(empty_file, "not an audio file")

    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros((0, 2)), 44100)
    _expect(no_frames, "zero frames")

    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(_wav_header(8000, 1)[:30])
    _expect(truncated, "not an audio file")


def test_zero_channels_and_absurd_rates(tmp_path: Path) -> None:
    zero = tmp_path / "zero_channels.wav"
    zero.write_bytes(_wav_header(8000, 0))
    with pytest.raises(MediaError, match="zero_channels"):
        load_audio(zero)
    for rate, name in ((10, "slow.wav"), (5_000_000, "fast.wav")):
        path = tmp_path / name
        path.write_bytes(_wav_header(rate, 1))
        with pytest.raises(MediaError, match=name):
            load_audio(path)
    slow = tmp_path / "slow.wav"
    with pytest.raises(MediaError, match="sample rate of 10 Hz"):
        load_audio(slow)


def test_nan_and_inf_samples(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        samples = _tone(440, 8000, 1.0)
        samples[4321] = bad
        path = tmp_path / "bad.wav"
        sf.write(path, samples, 8000, subtype="DOUBLE")
        _expect(path, "NaN or infinite")


def test_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, _tone(440, 8000, 3.0), 8000, subtype="PCM_16")
    monkeypatch.setattr(audio, "MAX_DURATION", 2.0)
    _expect(path, "limited to|more than")


def test_convert_file_writes_8k_mono_pcm16(tmp_path: Path) -> None:
    src = tmp_path / "in.flac"
    sf.write(src, np.stack([_tone(440, 44100, 1.0)] * 2, axis=1), 44100, subtype="PCM_24")
    dst = tmp_path / "out.wav"
    assert convert_file(src, dst) == pytest.approx(1.0)
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (
        8000,
        1,
        "PCM_16",
        "WAV",
    )
    np.testing.assert_array_equal(sf.read(dst, dtype="int16")[0], load_audio(src))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.flac", "out.wav"]
    check_music_file(dst)  # the converted file is itself valid hold music


def test_convert_file_errors(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    sf.write(src, _tone(440, 8000, 0.5), 8000)
    with pytest.raises(MediaError, match="cannot write"):
        convert_file(src, tmp_path / "no" / "such" / "dir.wav")
    with pytest.raises(MediaError, match="is a directory"):
        convert_file(src, tmp_path)
    with pytest.raises(MediaError, match="no such file"):
        convert_file(tmp_path / "absent.mp3", tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_loaded_music_survives_g711(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    sf.write(path, _tone(440, 44100, 1.0, amplitude=0.3), 44100, subtype="FLOAT")
    pcm = load_audio(path)
    for codec in g711.Codec:
        back = g711.decode(g711.encode(pcm, codec), codec).astype(np.float64)
        snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum((back - pcm) ** 2))
        assert snr > 30
