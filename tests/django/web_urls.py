"""URLconf of the middleware, monitor and ASGI tests (`@pytest.mark.urls("tests.django.web_urls")`)."""

from __future__ import annotations

from django.urls import include, path

from tests.django import web_views as v

urlpatterns = [
    path("hello/", v.hello, name="hello"),
    path("big/", v.big, name="big"),
    path("tickets/<int:pk>/", v.ticket, name="ticket-detail"),
    path("orgs/", v.orgs, name="orgs"),
    path("whoami/", v.whoami, name="whoami"),
    path("cookie/", v.cookie, name="cookie"),
    path("slow/", v.slow, name="slow"),
    path("stream/", v.stream, name="stream"),
    path("fail/", v.fail, name="fail"),
    path("async/hello/", v.ahello, name="ahello"),
    path("async/big/", v.abig, name="abig"),
    path("async/tickets/<int:pk>/", v.aticket, name="aticket-detail"),
    path("async/slow/", v.aslow, name="aslow"),
    path("async/stream/", v.astream, name="astream"),
    path("api/", include(([path("items/<int:pk>/", v.ticket, name="item")], "api"))),
    path("perf/", include("perfkit.django.urls")),
]
