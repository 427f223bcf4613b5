"""multipart/form-data bodies, read with the standard library's email parser (no extra dependency).

The body has been read whole already (server.security.body bounds it), so parsing is a pure
function of its bytes: text fields as strings, file parts as bytes, each name once.
"""

from __future__ import annotations

import dataclasses
from email.parser import BytesParser
from email.policy import HTTP


class FormError(ValueError):
    """A body that is not a form this server can read; `field` names the part at fault, if one is."""

    def __init__(self, message: str, field: str = "body", rule: str = "multipart") -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


@dataclasses.dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]
    files: dict[str, bytes]


def is_multipart(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def read_form(content_type: str, raw: bytes) -> Form:
    """The parts of a multipart/form-data body: a part with a filename is a file, the rest text."""
    header = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(header + raw)
    if not message.is_multipart():
        raise FormError("body: not a multipart/form-data body with a boundary")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise FormError("body: a part has no name in its Content-Disposition")
        if name in fields or name in files:
            raise FormError(f"{name}: given more than once", name, "duplicate_key")
        # bytes, or None for a part that is itself multipart (typeshed allows any payload)
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        filename = part.get_filename()
        if filename == "" and not payload:
            continue  # a form's file input left empty: browsers send it as a part with no file
        if filename is not None:
            files[name] = payload
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            fields[name] = payload.decode(charset, "replace")
        except LookupError:
            raise FormError(f"{name}: unknown charset {charset!r}", name, "charset") from None
    return Form(fields, files)
