"""Markup for templates: `srcset`, `<img>`, `<picture>` and the preload `Link` of the LCP image.

Widths come from the service's allow-list only (others are refused, as the endpoint refuses them).
Images are `loading="lazy" decoding="async"` unless marked as the page's LCP image (`priority=True`):
then `loading="eager" fetchpriority="high"`, and `preload()` gives the matching `Link` header. The LCP
image is a plain `<img>` whose URLs negotiate the format (`f=auto`, `Vary: Accept`): a preload cannot
tell which `<source>` of a `<picture>` the browser will pick, so it would fetch the wrong one.
With a placeholder, the image paints its ThumbHash at once (a data URI as its background), then itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from html import escape

from perfkit.images.engine import Placeholder
from perfkit.images.errors import BadOptionsError
from perfkit.images.geometry import plan
from perfkit.images.negotiate import CONTENT_TYPES
from perfkit.images.options import Options, Policy

__all__ = ["Markup", "attributes", "link_header", "widths_for"]

UrlFor = Callable[..., str]


class Markup:
    """What the helpers build from: the service's `url` function and its policy."""

    def __init__(self, url_for: UrlFor, policy: Policy) -> None:
        self.url_for = url_for
        self.policy = policy

    def widths(self, widths: Iterable[int] | None, placeholder: Placeholder | None) -> list[int]:
        return widths_for(self.policy, widths, placeholder)

    def srcset(self, path: str, widths: Iterable[int] | None = None,
               placeholder: Placeholder | None = None, **options: object) -> str:  # fmt: skip
        """`url 320w, url 640w, ...` over the allowed `widths` (default all of them, up to the source's)."""
        return ", ".join(
            f"{self.url_for(path, w=w, **options)} {w}w" for w in self.widths(widths, placeholder)
        )

    def img(
        self,
        path: str,
        alt: str,
        *,
        widths: Iterable[int] | None = None,
        sizes: str = "100vw",
        placeholder: Placeholder | None = None,
        priority: bool = False,
        lqip: bool = False,
        attrs: Mapping[str, str] | None = None,
        **options: object,
    ) -> str:
        """An `<img>` with `srcset`/`sizes`, intrinsic `width`/`height` (no layout shift) when the
        placeholder gives the source's size, and the loading attributes."""
        chosen = self.widths(widths, placeholder)
        found: dict[str, str] = {
            "src": self.url_for(path, w=chosen[len(chosen) // 2], **options),
            "srcset": self.srcset(path, chosen, None, **options),
            "sizes": sizes,
            "alt": alt,
        }
        found.update(self._size(placeholder, chosen[-1], options))
        found.update(self._loading(priority))
        if placeholder is not None:
            layers = [f"url({self.url_for(path, lqip=True, **_no_size(options))})"] if lqip else []
            layers.append(f"url({placeholder.data_uri})")
            found["style"] = f"background-size:cover;background-image:{','.join(layers)}"
        found.update(attrs or {})
        return f"<img {attributes(found)}>"

    def picture(
        self,
        path: str,
        alt: str,
        *,
        formats: Iterable[str] = ("avif", "webp"),
        widths: Iterable[int] | None = None,
        sizes: str = "100vw",
        placeholder: Placeholder | None = None,
        priority: bool = False,
        lqip: bool = False,
        attrs: Mapping[str, str] | None = None,
        **options: object,
    ) -> str:
        """`<picture>` with one `<source type=...>` per format, then the `<img>` (see `img`); for the
        LCP image (`priority=True`) the `<img>` alone (see the module docstring)."""
        image = self.img(path, alt, widths=widths, sizes=sizes, placeholder=placeholder,
                         priority=priority, lqip=lqip, attrs=attrs, **options)  # fmt: skip
        if priority:
            return image
        chosen = self.widths(widths, placeholder)
        sources = []
        for fmt in formats:
            if fmt not in ("avif", "webp", "jpeg", "png"):
                raise BadOptionsError(f"picture formats: avif, webp, jpeg or png, not {fmt!r}")
            srcset = self.srcset(path, chosen, None, **{**options, "f": fmt})
            sources.append(
                f"<source {attributes({'type': CONTENT_TYPES[fmt], 'srcset': srcset, 'sizes': sizes})}>"
            )
        return f"<picture>{''.join(sources)}{image}</picture>"

    def preload(self, path: str, *, widths: Iterable[int] | None = None, sizes: str = "100vw",
                placeholder: Placeholder | None = None, **options: object) -> str:  # fmt: skip
        """The `Link` header value that preloads the LCP image `img(..., priority=True)` shows."""
        chosen = self.widths(widths, placeholder)
        return link_header(
            self.url_for(path, w=chosen[len(chosen) // 2], **options),
            self.srcset(path, chosen, None, **options),
            sizes,
        )

    def _size(
        self, placeholder: Placeholder | None, width: int, options: Mapping[str, object]
    ) -> dict[str, str]:
        if placeholder is None:
            return {}
        given = {k: v for k, v in options.items() if k in ("h", "fit", "fp", "dpr", "v")}
        p = plan(placeholder.width, placeholder.height, Options.build(self.policy, w=width, **given))
        return {"width": str(p.width), "height": str(p.height)}

    @staticmethod
    def _loading(priority: bool) -> dict[str, str]:
        if priority:
            return {"loading": "eager", "decoding": "async", "fetchpriority": "high"}
        return {"loading": "lazy", "decoding": "async"}


def widths_for(policy: Policy, widths: Iterable[int] | None, placeholder: Placeholder | None) -> list[int]:
    """The widths of a srcset: `widths` (each in the allow-list), by default the allowed ones up to the
    source's own width (wider ones would be the same image again)."""
    if widths is None:
        chosen = sorted(policy.widths)
        if placeholder is not None:
            chosen = [w for w in chosen if w <= placeholder.width] or chosen[:1]
        return chosen
    chosen = sorted(set(widths))
    refused = [w for w in chosen if w not in policy.widths]
    if refused or not chosen:
        allowed = ", ".join(map(str, policy.widths))
        raise BadOptionsError(f"srcset widths {refused or chosen} are not allowed (allowed: {allowed})")
    return chosen


def attributes(values: Mapping[str, str]) -> str:
    return " ".join(f'{name}="{escape(value, quote=True)}"' for name, value in values.items())


def link_header(href: str, srcset: str, sizes: str) -> str:
    """`<href>; rel=preload; as=image; imagesrcset=...; imagesizes=...; fetchpriority=high`."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (f"<{href}>; rel=preload; as=image; imagesrcset={quoted(srcset)}; imagesizes={quoted(sizes)}; "
            "fetchpriority=high")  # fmt: skip


def _no_size(options: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in options.items() if k not in ("w", "h", "fit", "fp", "dpr", "q", "blur", "f")}
