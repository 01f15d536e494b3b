"""A folder as a zip archive, streamed: bounded memory however large the weights are (no Django here)."""
from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["stream_zip"]

# Read and yield the weights in pieces of this size: large enough that per-chunk overhead vanishes (a 500 MB
# safetensors file is 500 writes), small enough that a slow client holds little memory.
CHUNK_BYTES = 1 << 20


class _Sink:
    """A write-only, unseekable file object whose bytes the generator takes out after every write."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def stream_zip(folder: str | os.PathLike[str], prefix: str) -> Iterator[bytes]:
    """The regular files under ``folder`` (sorted, hidden ones left out) as ``prefix/<relative path>`` entries.

    Stored, not deflated: safetensors weights do not compress (a few percent) and deflate would cost ~20 s/GB of CPU.
    Zip64 throughout, so files over 4 GB work.
    """
    root = Path(folder)
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[call-overload]  # _Sink is write-only
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or path.is_symlink() or any(part.startswith(".") for part in relative.parts):
                continue
            info = zipfile.ZipInfo.from_file(path, f"{prefix}/{relative.as_posix()}")
            with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK_BYTES):
                    dst.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
