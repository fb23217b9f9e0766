"""The one JSON error body every refusal is answered with, over HTTP and in the app's endpoints:
``{"errors": [{"message": ..., "extensions": {"code": ..., ...}}]}``, the shape of a GraphQL
error, so a client reads every refusal the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from licensing.domain.error_codes import ErrorCode


def error_body(code: ErrorCode, message: str, **extensions: Any) -> dict[str, Any]:
    """The JSON body of a refusal; ``extensions`` adds fields beside the code."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def error_response(
    status_code: int,
    code: ErrorCode,
    message: str,
    *,
    extensions: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The refusal as an HTTP answer with ``status_code`` and ``headers``."""
    return JSONResponse(
        error_body(code, message, **(extensions or {})),
        status_code=status_code,
        headers=headers,
    )
