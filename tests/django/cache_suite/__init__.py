"""Django's own cache tests, run against PerfkitCache (see tests/django/test_cache_suite.py)."""
