"""The Django app: `INSTALLED_APPS = [..., "perfkit.django"]`. `ready()` wires each part once."""

from __future__ import annotations

from django.apps import AppConfig


class PerfkitConfig(AppConfig):
    name = "perfkit.django"
    label = "perfkit"
    verbose_name = "perfkit"

    def ready(self) -> None:
        from perfkit.django import conf

        conf.connect_signals()
        conf.get_settings()  # a bad PERFKIT setting fails at start-up, naming the key
        for install in conf.installers():
            install()
