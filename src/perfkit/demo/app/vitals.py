"""The demo reports its real web vitals: the live page loads Google's `web-vitals` (from npm, never
shipped with perfkit) and perfkit's RUM snippet (`/perf/rum.js`), so its page views show on the dashboard.

`/live/vendor/web-vitals.js` serves the attribution build from the first folder that has it:
`PERFKIT_DEMO_WEB_VITALS`, `./node_modules/web-vitals`, `~/.cache/perfkit-npm/web-vitals/node_modules/
web-vitals` (where perfkit's tests install it). Without one the pages leave the RUM script out (a
request for it would be a 404 in the browser's console) and the route answers 404 with the install
hint; `npm install web-vitals` turns it on.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

BUILD = Path("dist") / "web-vitals.attribution.js"
HINT = "web-vitals is not installed: `npm install web-vitals` in the demo's folder (see docs/rum.md)\n"
PAGE_SCRIPT = """<script type="module">
  try {  // web vitals of this page view to perfkit's collector, when web-vitals is installed
    const webVitals = await import("/live/vendor/web-vitals.js");
    window.perfkitRum = (await import("/perf/rum.js")).start(webVitals);
  } catch (error) { console.info("perfkit demo: no RUM (npm install web-vitals)"); }
</script>"""


def folders() -> list[Path]:
    given = os.environ.get("PERFKIT_DEMO_WEB_VITALS")
    cached = Path.home() / ".cache" / "perfkit-npm" / "web-vitals" / "node_modules" / "web-vitals"
    return [*([Path(given)] if given else []), Path.cwd() / "node_modules" / "web-vitals", cached]


def find() -> Path | None:
    """The attribution build of the first web-vitals folder that has one."""
    return next((f / BUILD for f in folders() if (f / BUILD).is_file()), None)


def page_script() -> str:
    """`PAGE_SCRIPT` when web-vitals is installed, else a comment saying how to turn RUM on."""
    return PAGE_SCRIPT if find() is not None else "<!-- no RUM: npm install web-vitals (docs/rum.md) -->"


async def web_vitals(request: Request) -> Response:
    found = find()
    if found is None:
        return PlainTextResponse(HINT, status_code=404)
    return FileResponse(found, media_type="text/javascript", headers={"cache-control": "no-cache"})
