"""`urlpatterns += [path("perf/", include("perfkit.django.urls"))]`: perfkit's monitor endpoints.

Under the include path: `health` (liveness, open), `health/ready`, `metrics` (Prometheus), `report`,
`live`, `api/...` and the dashboard at the path itself. See `perfkit.django.views`.
"""

from __future__ import annotations

from django.urls import path, re_path

from perfkit.django import views

app_name = "perfkit"
urlpatterns = [
    path("", views.monitor, name="dashboard"),
    re_path(r"^(?P<rest>.+)$", views.monitor, name="monitor"),
]
