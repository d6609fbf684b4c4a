"""Errors in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}`` with the right HTTP status.

Messages never carry file paths, tracebacks or request text: a crash answers "internal error" with the request id
that the audit log and the server's stderr also show. Client errors (4xx except 408/409/429) also send
``x-should-retry: false``, which the official ``openai`` client honours, so a malformed request is sent once.

Example:
    >>> err = ApiError(404, "model 'x' does not exist", code="model_not_found", param="model")
    >>> err.body()["error"]["type"], err.status
    ('invalid_request_error', 404)
"""

from __future__ import annotations

from typing import Any

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error", 504: "timeout_error"}


class ApiError(Exception):
    """An error the server answers with; ``headers`` adds e.g. ``Retry-After``."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 error_type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.error_type = error_type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body (also the payload of a mid-stream error chunk)."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if 400 <= self.status < 500 and self.status not in (408, 409, 429):
            headers.setdefault("x-should-retry", "false")
        return headers


def install_error_handlers(app: Any) -> None:
    """Answer every error of ``app`` (ours, FastAPI's 422 validation errors, unknown routes, crashes) in the OpenAI
    shape; a FastAPI 422 becomes a 400."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.response_headers())

    async def on_api_error(request: Any, exc: ApiError) -> JSONResponse:
        return respond(exc)

    async def on_validation(request: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        return respond(ApiError(400, f"invalid request: {'.'.join(loc) or 'body'}: {first.get('msg', 'invalid')}",
                                code="invalid_request", param=".".join(loc) or None))

    async def on_http(request: Any, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = {404: f"no route {request.url.path}", 405: f"method {request.method} not allowed here"}.get(
            exc.status_code, str(exc.detail))
        return respond(ApiError(exc.status_code, message, code=code))

    async def on_crash(request: Any, exc: Exception) -> JSONResponse:
        import sys

        rid = getattr(request.state, "request_id", "-")
        # the type only: an exception's message can quote the prompt
        print(f"clinforge serve: request {rid} failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        return respond(ApiError(500, f"internal error (request id {rid})", code="internal_error"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
