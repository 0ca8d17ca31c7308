"""G.711 µ-law (PCMU) and A-law (PCMA) with numpy lookup tables.

Theory of operation
-------------------
G.711 maps one 16-bit linear sample to one 8-bit code, independently of every
other sample (it is memoryless). Both laws split the magnitude into eight
segments (chords) whose step doubles from one segment to the next, and keep
four mantissa bits inside a segment:

* µ-law adds a bias of 132 (0x84) to the magnitude, clipped at 32635, finds
  the segment from the position of the highest set bit, and sends the one's
  complement of ``sign | segment | mantissa``.
* A-law works on the 12 upper bits of the magnitude (negative samples use the
  one's complement, so -1 and 0 share a step), has a linear first segment of
  16 steps of 16, and inverts the even bits of the code (XOR 0x55).

Because G.711 is memoryless, encoding is one indexed read in a 65,536-entry
table (indexed by the sample's 16-bit pattern) and decoding one read in a
256-entry table. The tables are built once, at import, by vectorised numpy
arithmetic, and are read-only.

Invariants
----------
* Bit-exact with the classic ITU-T G.711 reference code (Sun's ``g711.c`` /
  ITU-T G.191), on every 16-bit input and every code.
* ``encode(decode(c)) == c`` for every code, except µ-law 0x7F (negative
  zero), which decodes to 0 and so re-encodes as 0xFF.
* Decoding returns the middle of the code's input step.
"""

from __future__ import annotations

import enum
from typing import Final, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from huntgroup.errors import MediaError

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "Codec",
    "decode",
    "decode_alaw",
    "decode_ulaw",
    "encode",
    "encode_alaw",
    "encode_ulaw",
]

ULAW_BIAS: Final = 0x84
ULAW_CLIP: Final = 32635
ALAW_EVEN_BITS: Final = 0x55


class Codec(enum.Enum):
    """The two G.711 laws, named as in RTP/AVP (RFC 3551)."""

    PCMU = "PCMU"
    PCMA = "PCMA"

    @property
    def payload_type(self) -> int:
        """The static RTP payload type: 0 for PCMU, 8 for PCMA."""
        return 0 if self is Codec.PCMU else 8

    @property
    def silence(self) -> int:
        """The code of a zero sample (0xFF for PCMU, 0xD5 for PCMA)."""
        return int((ULAW_ENCODE_TABLE if self is Codec.PCMU else ALAW_ENCODE_TABLE)[0])

    @classmethod
    def from_name(cls, name: str) -> Codec:
        """The codec for an encoding name, case-insensitive ("pcmu" -> PCMU)."""
        try:
            return cls(name.upper())
        except ValueError:
            raise MediaError(f"unknown G.711 codec {name!r} (expected PCMU or PCMA)") from None


def _all_samples() -> NDArray[np.int32]:
    """Every 16-bit sample, at the index given by its 16-bit pattern."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> NDArray[np.uint8]:
    x = _all_samples()
    negative = x < 0
    magnitude = np.minimum(np.abs(x), ULAW_CLIP) + ULAW_BIAS  # 132 ..= 32767
    # Segment = index of the highest set bit, minus 7 (bit 7 is always set after the bias).
    segment = np.searchsorted(np.array([1 << b for b in range(8, 15)]), magnitude, side="right")
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    code = (negative.astype(np.int32) << 7) | (segment << 4) | mantissa
    return (~code & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u >> 4) & 0x07)
    return np.where(u & 0x80, ULAW_BIAS - t, t - ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> NDArray[np.uint8]:
    x = _all_samples()
    positive = x >= 0
    magnitude = np.where(positive, x, ~x) >> 4  # one's complement for negatives: 0 ..= 2047
    segment = np.searchsorted(np.array([16 << s for s in range(7)]), magnitude, side="right")
    mantissa = (magnitude >> np.maximum(segment - 1, 0)) & 0x0F
    code = (positive.astype(np.int32) << 7) | (segment << 4) | mantissa
    return (code ^ ALAW_EVEN_BITS).astype(np.uint8)


def _build_alaw_decode() -> NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ ALAW_EVEN_BITS
    segment = (a >> 4) & 0x07
    step = (a & 0x0F) << 4
    t = np.where(segment == 0, step + 8, (step + 0x108) << np.maximum(segment - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_Scalar = TypeVar("_Scalar", bound=np.generic)


def _frozen(table: NDArray[_Scalar]) -> NDArray[_Scalar]:
    table.flags.writeable = False
    return table


ULAW_ENCODE_TABLE: Final = _frozen(_build_ulaw_encode())
ULAW_DECODE_TABLE: Final = _frozen(_build_ulaw_decode())
ALAW_ENCODE_TABLE: Final = _frozen(_build_alaw_encode())
ALAW_DECODE_TABLE: Final = _frozen(_build_alaw_decode())


def _pcm16(pcm: ArrayLike) -> NDArray[np.int16]:
    """``pcm`` as an int16 array, or MediaError if it is not 16-bit integer PCM."""
    array = np.asarray(pcm)
    if array.dtype == np.int16:
        return array
    if array.dtype.kind not in "iu":
        raise MediaError(f"G.711 encodes 16-bit integer PCM, not {array.dtype} samples")
    if array.size and (int(array.min()) < -32768 or int(array.max()) > 32767):
        raise MediaError("G.711 input has samples outside the 16-bit range")
    return array.astype(np.int16)


def _codes(data: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.uint8]:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise MediaError(f"G.711 codes are bytes (uint8), not {data.dtype}")
        return data
    return np.frombuffer(data, dtype=np.uint8)


def encode_ulaw(pcm: ArrayLike) -> NDArray[np.uint8]:
    """µ-law codes of 16-bit PCM samples (same shape)."""
    return ULAW_ENCODE_TABLE[_pcm16(pcm).view(np.uint16)]


def encode_alaw(pcm: ArrayLike) -> NDArray[np.uint8]:
    """A-law codes of 16-bit PCM samples (same shape)."""
    return ALAW_ENCODE_TABLE[_pcm16(pcm).view(np.uint16)]


def decode_ulaw(data: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.int16]:
    """16-bit PCM samples of µ-law codes."""
    return ULAW_DECODE_TABLE[_codes(data)]


def decode_alaw(data: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.int16]:
    """16-bit PCM samples of A-law codes."""
    return ALAW_DECODE_TABLE[_codes(data)]


def encode(pcm: ArrayLike, codec: Codec) -> bytes:
    """The G.711 payload (one byte per sample) of 16-bit PCM samples."""
    codes = encode_ulaw(pcm) if codec is Codec.PCMU else encode_alaw(pcm)
    return codes.tobytes()


def decode(data: bytes | bytearray | memoryview, codec: Codec) -> NDArray[np.int16]:
    """16-bit PCM samples of a G.711 payload."""
    return decode_ulaw(data) if codec is Codec.PCMU else decode_alaw(data)
