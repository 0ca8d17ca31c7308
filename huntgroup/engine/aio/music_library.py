"""Hold music files, each loaded once, for the media driver.

:class:`MusicLibrary` keys each file by its resolved path, size and
modification time, so a file replaced before a reload is read again, and
hands out the default music for ``music: null``. Loading reads the disk: the
server calls it outside the event loop (``asyncio.to_thread``) before a reload
takes effect, so the cache is guarded by a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from huntgroup.errors import MediaError
from huntgroup.media.audio import load_audio
from huntgroup.media.g711 import Codec
from huntgroup.media.music import HoldMusic, default_music


class MusicLibrary:
    """Hold music by file, each file loaded once; ``None`` is the default music."""

    def __init__(self, loader: Callable[[Path], NDArray[np.int16]] = load_audio) -> None:
        self._loader = loader
        self._items: dict[tuple[str, int, int], HoldMusic] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
        try:
            resolved = Path(path).resolve()
            st = resolved.stat()
        except (OSError, RuntimeError, ValueError) as exc:
            raise MediaError(f"{os.fspath(path)!r}: cannot open hold music: {exc}") from exc
        return str(resolved), st.st_size, st.st_mtime_ns

    def get(self, path: str | os.PathLike[str] | None) -> HoldMusic:
        """The music for ``path`` (loading it on first use), or the default music."""
        if path is None:
            return default_music()
        key = self._key(path)
        with self._lock:
            music = self._items.get(key)
            if music is None:
                music = HoldMusic(self._loader(Path(key[0])), name=os.fspath(path))
                for codec in Codec:  # cut here (off the event loop on a reload), not at a call
                    music.frames(codec)
                self._items[key] = music
            return music

    def retain(self, paths: Iterable[str | os.PathLike[str] | None]) -> None:
        """Forget every loaded file not in ``paths`` (after a reload)."""
        keep = {str(Path(p).resolve()) for p in paths if p is not None}
        with self._lock:
            for key in [k for k in self._items if k[0] not in keep]:
                del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
