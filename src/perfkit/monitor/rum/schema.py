"""The beacon's schema, checked by msgspec while it decodes: anything else is refused with the reason.

A beacon is what the served snippet sends (JSON in a `text/plain` body, so no CORS preflight):

    {"url": "/products/42", "device": "mobile",
     "metrics": [{"name": "LCP", "id": "v5-1700-123", "value": 2710.5, "delta": 2710.5,
                  "target": "main>img.hero"},
                 {"name": "TTFB", "id": "v5-1700-124", "value": 310.0, "delta": 310.0, "server": 182.4}]}

Times are milliseconds, as web-vitals reports them. Unknown fields are ignored (a newer snippet still
talks to an older server); sizes are bounded here, the body's size by the endpoint.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from perfkit.errors import InvalidArgumentError

MAX_METRICS = 40  # five metrics per page view; a batch of a few views (soft navigations, bfcache restores)
_Text = Annotated[str, msgspec.Meta(max_length=2048)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Target = Annotated[str, msgspec.Meta(max_length=512)]
_Ms = Annotated[float, msgspec.Meta(ge=0, le=3_600_000)]  # an hour: beyond is a broken clock
_Delta = Annotated[float, msgspec.Meta(ge=-3_600_000, le=3_600_000)]  # INP may decrease


class Metric(msgspec.Struct, frozen=True):
    name: Literal["LCP", "INP", "CLS", "FCP", "TTFB"]
    id: _Id
    value: _Ms
    delta: _Delta
    target: _Target | None = None  # attribution: LCP element, INP interaction target, CLS largest shift
    server: _Ms | None = None  # TTFB only: the server's Server-Timing `total`, ms


class Beacon(msgspec.Struct, frozen=True):
    url: _Text
    metrics: Annotated[list[Metric], msgspec.Meta(min_length=1, max_length=MAX_METRICS)]
    device: Literal["mobile", "desktop"] | None = None


_decode = msgspec.json.Decoder(Beacon).decode


def decode(body: bytes) -> Beacon:
    """The beacon in `body`, or `InvalidArgumentError` saying what is wrong (msgspec's path and reason)."""
    try:
        return _decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidArgumentError(f"beacon: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidArgumentError(f"beacon: not JSON ({exc})") from None
