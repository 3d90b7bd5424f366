"""The chart page: ``/`` and ``/static/*`` from the repository's ``web/`` folder.

``/`` is ``index.html``; ``/static/app.js`` and ``/static/style.css`` are the page's own
files; ``/static/lightweight-charts.js`` is the chart library,
``web/node_modules/lightweight-charts`` (``npm ci --prefix web``). Without it the datafeed
still starts, logs what to run, and the page says so (the library's URL answers 404 with
a line of JavaScript saying what is missing). Any other name is 404.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

__all__ = ["DEFAULT_WEB_ROOT", "StaticFiles"]

log = logging.getLogger(__name__)

#: The repository's ``web/`` folder, beside the ``ohlcv`` package.
DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
_CHART_LIB = Path(
    "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
)
_JS = "text/javascript; charset=utf-8"
_STATIC = {"app.js": _JS, "style.css": "text/css; charset=utf-8"}


class StaticFiles:
    """The page's files under ``web_root`` (module doc)."""

    def __init__(self, web_root: Path) -> None:
        self.web_root = web_root

    @property
    def chart_library(self) -> Path:
        return self.web_root / _CHART_LIB

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)

    def warn_if_library_missing(self) -> None:
        """Log what to run when the chart library is not installed (at start)."""
        if not self.chart_library.is_file():
            log.warning(
                "chart library missing at %s: run `npm ci --prefix %s`; the page will say so",
                self.chart_library,
                self.web_root,
            )

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.web_root / "index.html", "text/html; charset=utf-8")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "lightweight-charts.js":
            if not self.chart_library.is_file():
                return web.Response(
                    status=404,
                    text="// chart library missing: run `npm ci --prefix web`\n",
                    content_type="text/javascript",
                )
            return self._file(self.chart_library, _JS)
        content_type = _STATIC.get(name)
        if content_type is None:
            raise web.HTTPNotFound()
        return self._file(self.web_root / name, content_type)

    def _file(self, path: Path, content_type: str) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(text=f"{path.name} is missing from {self.web_root}")
        return web.FileResponse(
            path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
