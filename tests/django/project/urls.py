"""The default URLconf; each test module that serves views uses its own (`@pytest.mark.urls(...)`)."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
