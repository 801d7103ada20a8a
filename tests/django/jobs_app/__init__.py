"""An installed app of the worker test project (tests/django/jobs_settings.py) with a `tasks` module."""
