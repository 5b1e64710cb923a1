"""Output files as the airlock keeps them: their kinds, media types, intake limits and the accepted
(sanitised) payload. Intake itself, which reads and rewrites content, is an adapter
(:func:`enclave.airlock.files.intake`, behind :class:`enclave.domain.ports.OutputChecks`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from enclave.domain.errors import InvalidInput


class FileKind(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    PNG = "png"
    JPEG = "jpeg"
    SVG = "svg"
    HTML = "html"
    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"


MEDIA_TYPES: dict[FileKind, str] = {
    FileKind.CSV: "text/csv; charset=utf-8",
    FileKind.TSV: "text/tab-separated-values; charset=utf-8",
    FileKind.PNG: "image/png",
    FileKind.JPEG: "image/jpeg",
    FileKind.SVG: "image/svg+xml",
    FileKind.HTML: "text/html; charset=utf-8",
    FileKind.TEXT: "text/plain; charset=utf-8",
    FileKind.MARKDOWN: "text/markdown; charset=utf-8",
    FileKind.JSON: "application/json",
}


TABLE_KINDS = frozenset({FileKind.CSV, FileKind.TSV})


IMAGE_KINDS = frozenset({FileKind.PNG, FileKind.JPEG})


TEXT_KINDS = frozenset(set(FileKind) - IMAGE_KINDS)


@dataclass(frozen=True)
class Limits:
    """Intake limits; the service passes its configured values, the defaults suit the demo."""

    max_file_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = 50 * 1024 * 1024
    max_files: int = 50
    max_name_length: int = 200
    max_path_depth: int = 4
    max_image_pixels: int = 40_000_000
    max_table_columns: int = 500


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class SanitisedFile:
    """A file accepted by intake: the payload to store and what intake changed in it."""

    name: str
    kind: FileKind
    content: bytes
    sha256: str
    original_sha256: str
    original_size: int
    changes: tuple[str, ...]

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]

    @property
    def is_table(self) -> bool:
        return self.kind in TABLE_KINDS

    def text(self) -> str:
        """The content as text (every accepted non-image file is UTF-8)."""
        if self.kind in IMAGE_KINDS:
            raise InvalidInput(f"{self.name} is an image, not text")
        return self.content.decode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable record without the payload (stored with the request)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "media_type": self.media_type,
            "size": len(self.content),
            "sha256": self.sha256,
            "original_size": self.original_size,
            "original_sha256": self.original_sha256,
            "changes": list(self.changes),
        }
