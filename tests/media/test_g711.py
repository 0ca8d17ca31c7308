"""G.711 against an independent scalar reference, on every input and every code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from huntgroup.errors import MediaError
from huntgroup.media import g711
from huntgroup.media.g711 import Codec

# --- An independent scalar reference, written after the classic segment-search code ---

_SEG_UEND = (0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def ref_linear2ulaw(pcm: int) -> int:
    if pcm < 0:
        pcm = -pcm
        mask = 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 32635) + 0x84
    seg = _search(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 3)) & 0xF)) ^ mask


def ref_ulaw2linear(code: int) -> int:
    u = ~code & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return 0x84 - t if u & 0x80 else t - 0x84


def ref_linear2alaw(pcm: int) -> int:
    pcm >>= 3  # 13-bit, arithmetic shift
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _search(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return aval ^ mask


def ref_alaw2linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_every_16_bit_input() -> None:
    expected = np.array([ref_linear2ulaw(int(x)) for x in ALL_SAMPLES], dtype=np.uint8)
    np.testing.assert_array_equal(g711.encode_ulaw(ALL_SAMPLES), expected)


def test_alaw_encode_every_16_bit_input() -> None:
    expected = np.array([ref_linear2alaw(int(x)) for x in ALL_SAMPLES], dtype=np.uint8)
    np.testing.assert_array_equal(g711.encode_alaw(ALL_SAMPLES), expected)


def test_decode_every_code() -> None:
    np.testing.assert_array_equal(
        g711.decode_ulaw(ALL_CODES), [ref_ulaw2linear(c) for c in ALL_CODES]
    )
    np.testing.assert_array_equal(
        g711.decode_alaw(ALL_CODES), [ref_alaw2linear(c) for c in ALL_CODES]
    )


def test_known_values_from_the_standard() -> None:
    # Zero: µ-law 0xFF, A-law 0xD5 (even-bit inverted 0x80); extremes.
    assert g711.encode(np.array([0, 32767, -32768], dtype=np.int16), Codec.PCMU) == b"\xff\x80\x00"
    assert g711.encode(np.array([0, 32767, -32768], dtype=np.int16), Codec.PCMA) == b"\xd5\xaa\x2a"
    assert Codec.PCMU.silence == 0xFF
    assert Codec.PCMA.silence == 0xD5
    assert (Codec.PCMU.payload_type, Codec.PCMA.payload_type) == (0, 8)
    # A-law's sign bit: positive samples have bit 7 set after removing the 0x55 inversion.
    assert g711.encode_alaw(np.array([1000]))[0] ^ 0x55 >= 0x80
    assert g711.encode_alaw(np.array([-1000]))[0] ^ 0x55 < 0x80


def test_reencode_decoded_codes_is_identity() -> None:
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(g711.encode_alaw(g711.decode_alaw(codes)), codes)
    back = g711.encode_ulaw(g711.decode_ulaw(codes))
    differs = np.nonzero(back != codes)[0].tolist()
    assert differs == [0x7F]  # µ-law negative zero decodes to 0, which encodes as 0xFF
    assert back[0x7F] == 0xFF
    assert g711.decode_ulaw(b"\x7f\xff").tolist() == [0, 0]


def _ulaw_step(code: int) -> int:
    return 1 << ((((~code) & 0x70) >> 4) + 3)


def _alaw_step(code: int) -> int:
    seg = ((code ^ 0x55) & 0x70) >> 4
    return 16 if seg == 0 else 1 << (seg + 3)


def test_roundtrip_error_bounded_by_half_a_step_of_the_segment() -> None:
    x = ALL_SAMPLES.astype(np.int32)
    for encode, decode, step_of in (
        (g711.encode_ulaw, g711.decode_ulaw, _ulaw_step),
        (g711.encode_alaw, g711.decode_alaw, _alaw_step),
    ):
        codes = encode(ALL_SAMPLES)
        error = np.abs(decode(codes).astype(np.int32) - x)
        half_steps = np.array([step_of(c) // 2 for c in range(256)])[codes]
        inside = np.abs(x) <= 32635  # µ-law clips above 32635
        assert np.all(error[inside] <= half_steps[inside])
        assert np.all(error <= 644)
        # Monotonic: a larger input never decodes smaller.
        assert np.all(np.diff(decode(codes).astype(np.int32)) >= 0)


def test_tone_roundtrip_snr_above_30_db() -> None:
    t = np.arange(8000) / 8000
    tone = np.round(12000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for codec in Codec:
        back = g711.decode(g711.encode(tone, codec), codec).astype(np.float64)
        noise = back - tone
        snr = 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum(noise**2))
        assert snr > 30, (codec, snr)


@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_encode_matches_reference_on_any_list(samples: list[int]) -> None:
    assert g711.encode(np.array(samples, dtype=np.int64), Codec.PCMU) == bytes(
        ref_linear2ulaw(s) for s in samples
    )
    assert g711.encode(np.array(samples, dtype=np.int64), Codec.PCMA) == bytes(
        ref_linear2alaw(s) for s in samples
    )


def test_bad_input_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="integer PCM"):
        g711.encode_ulaw(np.array([0.5]))
    with pytest.raises(MediaError, match="16-bit range"):
        g711.encode_alaw(np.array([40000]))
    with pytest.raises(MediaError, match="uint8"):
        g711.decode_ulaw(np.array([1, 2], dtype=np.int32))  # type: ignore[arg-type]
    with pytest.raises(MediaError, match=r"unknown G\.711 codec"):
        Codec.from_name("G729")
    assert Codec.from_name("pcma") is Codec.PCMA


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE_TABLE[0] = 0
