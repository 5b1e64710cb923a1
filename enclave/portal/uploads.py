"""A multipart upload read as it arrives: each file written straight to disk, never held in memory,
its size limit enforced while it streams, and the form's CSRF token checked before any file byte is
written (the token field comes first in the form, and a file part before it is refused).

Starlette's own form parser spools every file to the system's temporary directory and applies no
size limit to files, so a several-GB extract would be written in full before anything could refuse
it; this reader, over the same ``python-multipart`` parser, writes into the directory the caller
chooses (inside the holding store, removed afterwards) and stops at the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from enclave.domain.errors import InvalidInput, PayloadTooLarge
from enclave.portal.sessions import FormRefused

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 20


@dataclass
class StreamedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    handle: IO[bytes] | None = None
    size: int = 0


async def stream_form(
    request: Request,
    directory: Path,
    *,
    limits: dict[str, int],
    check_fields: Callable[[dict[str, str]], None],
) -> StreamedForm:
    """Read a ``multipart/form-data`` body into ``directory``. ``limits`` names the file fields
    accepted and the largest size of each, in bytes; ``check_fields`` is called with the fields
    read so far when the first file begins (it raises to refuse the form, e.g. a bad CSRF token)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise FormRefused("an upload must be sent as multipart/form-data")
    form = StreamedForm()
    part = _Part()
    header: dict[str, bytearray] = {}
    current_header = bytearray()
    current_value = bytearray()
    parts = 0
    checked = False

    def on_part_begin() -> None:
        nonlocal part, header, parts
        parts += 1
        if parts > MAX_PARTS:
            raise InvalidInput("the form has more parts than the upload form has")
        part = _Part()
        header = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        current_header.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        current_value.extend(data[start:end])

    def on_header_end() -> None:
        header[bytes(current_header).lower().decode("latin-1")] = bytearray(current_value)
        current_header.clear()
        current_value.clear()

    def on_headers_finished() -> None:
        nonlocal checked
        _, options = parse_options_header(bytes(header.get("content-disposition", b"")))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        if raw_filename is None:
            return
        part.filename = Path(raw_filename.decode("utf-8", "replace")).name or "upload"
        if part.name not in limits:
            raise InvalidInput(f"the form has no file field {part.name[:40]!r}")
        if not checked:
            check_fields(form.fields)
            checked = True
        target = directory / part.name
        target.mkdir(exist_ok=True)
        path = target / part.filename
        part.handle = path.open("wb")
        form.files[part.name] = path
        form.filenames[part.name] = part.filename

    def on_part_data(data: bytes, start: int, end: int) -> None:
        size = end - start
        part.size += size
        if part.handle is not None:
            if part.size > limits[part.name]:
                raise PayloadTooLarge(
                    f"the {part.name} file is larger than the limit of {limits[part.name] >> 20} MiB"
                )
            part.handle.write(data[start:end])
        else:
            if part.size > MAX_FIELD_BYTES:
                raise InvalidInput(f"the form field {part.name[:40]!r} is too long")
            part.data.extend(data[start:end])

    def on_part_end() -> None:
        if part.handle is not None:
            part.handle.close()
            part.handle = None
        elif part.name:
            form.fields[part.name] = part.data.decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    finally:
        if part.handle is not None:
            part.handle.close()
    if not checked:
        check_fields(form.fields)
    return form
