"""Reading one multipart file upload under a size limit."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from interpreter.errors import InvalidRequest, PayloadTooLarge


@dataclass
class Upload:
    filename: str
    content: bytes
    fields: dict[str, str] = field(default_factory=dict)  # the form's other text fields


async def read_multipart_file(request: Request, max_bytes: int) -> Upload:
    too_large = PayloadTooLarge(
        f"The upload is larger than this server's limit of {max_bytes} bytes."
    )
    declared = int(request.headers.get("content-length") or 0)
    # Refuse early when the body is declared larger than any acceptable upload.
    if declared > max_bytes + 64 * 1024:
        raise too_large
    try:
        form = await request.form(max_part_size=max_bytes + 1)
    except Exception as exc:  # starlette raises MultiPartException for bad bodies
        if "exceeded" in str(exc).lower():
            raise too_large from exc
        raise InvalidRequest(f"Could not read the multipart body: {exc}", param="file") from exc
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequest("Send the file as a multipart field named 'file'.", param="file")
        content = await upload.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise too_large
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return Upload(upload.filename or "", content, fields)
    finally:
        await form.close()
