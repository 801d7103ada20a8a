"""The Jinja2 global: `install_jinja(env, images)`, then `{{ images.picture("a.jpg", "Alt") }}`.

Jinja2 is optional and imported lazily (its `markupsafe` marks the helpers' HTML as safe, so
autoescaping leaves it alone; URLs and srcsets stay plain strings, which Jinja escapes in attributes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfkit.errors import MissingDependencyError

if TYPE_CHECKING:
    from perfkit.images.service import ImageService

__all__ = ["JinjaImages", "install_jinja"]


class JinjaImages:
    """The service's helpers as a template sees them: markup as `Markup`, URLs as strings."""

    def __init__(self, service: ImageService) -> None:
        try:
            from markupsafe import Markup
        except ImportError as exc:
            raise MissingDependencyError("install_jinja", "jinja2", "images") from exc
        self._service = service
        self._markup = Markup

    def url(self, path: str, **options: Any) -> str:
        return self._service.url(path, **options)

    def srcset(self, path: str, widths: Any = None, **options: Any) -> str:
        return self._service.srcset(path, widths, **options)

    def img(self, path: str, alt: str, **options: Any) -> Any:
        return self._markup(self._service.img(path, alt, **options))

    def picture(self, path: str, alt: str, **options: Any) -> Any:
        return self._markup(self._service.picture(path, alt, **options))


def install_jinja(env: Any, service: ImageService, name: str = "images") -> JinjaImages:
    """Make `service`'s helpers the global `name` of the Jinja2 environment `env`."""
    helpers = JinjaImages(service)
    env.globals[name] = helpers
    return helpers
