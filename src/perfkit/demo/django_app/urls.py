"""The demo's URLconf: the FastAPI app's paths (`perfkit.demo.measure` drives both), and perfkit's
monitor under `/perf/`."""

from __future__ import annotations

from django.urls import include, path

from perfkit.demo.django_app import views

urlpatterns = [
    path("naive/stats/<int:org_id>", views.stats_naive, name="naive_stats"),
    path("fast/stats/<int:org_id>", views.stats_fast, name="fast_stats"),
    path("naive/tickets/<int:org_id>", views.tickets_naive, name="naive_tickets"),
    path("fast/tickets/<int:org_id>", views.tickets_fast, name="fast_tickets"),
    path("naive/dashboard/<int:org_id>", views.dashboard_naive, name="naive_dashboard"),
    path("fast/dashboard/<int:org_id>", views.dashboard_cached, name="fast_dashboard"),
    path("naive/search", views.search_naive, name="naive_search"),
    path("fast/search", views.search_fast, name="fast_search"),
    path("tickets/<int:ticket_id>/status/<str:status>", views.set_status, name="set_status"),
    path("naive/export/<int:org_id>", views.export_naive, name="naive_export"),
    path("fast/export/<int:org_id>", views.export_fast, name="fast_export"),
    path("naive/notify/<int:org_id>", views.notify_naive, name="naive_notify"),
    path("fast/notify/<int:org_id>", views.notify_fast, name="fast_notify"),
    path("jobs/<str:job_id>", views.job_status, name="job_status"),
    path("jobs/<str:job_id>/export.csv", views.job_export, name="job_export"),
    path("perf/", include("perfkit.django.urls")),
]
