"""What the datafeed's endpoints share: query parameters, the error answer, SSE headers.

A bad request is HTTP 400 ``{"s": "error", "errmsg": "<parameter>: <why>"}`` (the UDF
error shape, used by every endpoint): a handler raises :class:`BadRequest` while it reads
its parameters and answers :func:`error` with its message.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["SSE_HEADERS", "BadRequest", "error", "int_param", "param"]

#: Headers of a server-sent event stream (``/stream``, ``/chat/{room}/stream``).
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
}


class BadRequest(Exception):  # noqa: N818 - carried to a 400 answer
    pass


def error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"s": "error", "errmsg": message}, status=status)


def param(request: web.Request, name: str, *, required: bool = True) -> str:
    value = request.query.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name}: missing")
        return ""
    return value


def int_param(request: web.Request, name: str, *, default: int | None = None) -> int:
    text = param(request, name, required=default is None)
    if text == "" and default is not None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text[:40]!r} is not an integer") from None
