"""Django's `BaseCacheTests` (tests/cache/tests.py of the installed Django's source release) against
`perfkit.django.cache.PerfkitCache`: memory://, SQLite, Redis and memory+Redis, through the sync API and,
with `AsyncDrivenPerfkitCache`, through the async one.

This file is not collected by pytest: tests/django/test_cache_suite.py copies it into the downloaded
release as tests/cache/perfkit_suite.py and runs it with Django's own runner (`runtests.py`).
"""

import asyncio
import os
import threading
import unittest

from django.test import TestCase, override_settings

from perfkit.django.cache import PerfkitCache

from .tests import BaseCacheTests, caches_setting_for_tests

REDIS = os.environ.get("PERFKIT_SUITE_REDIS_URL", "redis://127.0.0.1:6379/0")
SQLITE = os.environ.get("PERFKIT_SUITE_SQLITE_PATH", "/tmp/perfkit-django-suite.db")
NAMESPACE = f"djsuite-{os.getpid()}"  # clear() in tearDown removes this run's keys and nothing else
# Django's Redis and memcached suites exclude the cull aliases too: they test cull-by-fraction
# (MAX_ENTRIES/CULL_FREQUENCY), which a shared store does not do (perfkit's memory tier evicts LRU)
EXCLUDED = {"cull", "zero_cull"}
SYNC = "perfkit.django.cache.PerfkitCache"
ASYNC = "cache.perfkit_suite.AsyncDrivenPerfkitCache"


def caches(location, backend=SYNC, **options):
    return caches_setting_for_tests(
        BACKEND=backend,
        LOCATION=location,
        OPTIONS={"namespace": NAMESPACE, **options},
        exclude=EXCLUDED,
    )


class _Loop:
    """One event loop in a thread, for the whole run: the async API is driven from it."""

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    @classmethod
    def run(cls, coro):
        return asyncio.run_coroutine_threadsafe(coro, cls.loop).result()


def _driven(name):
    async_name = "a" + name

    def method(self, *args, **kwargs):
        return _Loop.run(getattr(self, async_name)(*args, **kwargs))

    method.__name__ = name
    return method


class AsyncDrivenPerfkitCache(PerfkitCache):
    """PerfkitCache whose sync methods run its async ones: Django's sync suite then tests `a*`."""

    for _name in (
        "get", "set", "add", "get_or_set", "touch", "delete", "has_key", "get_many", "set_many",
        "delete_many", "incr", "decr", "clear",
    ):  # fmt: skip
        locals()[_name] = _driven(_name)
    del _name


@override_settings(CACHES=caches("memory://"))
class PerfkitMemoryCacheTests(BaseCacheTests, TestCase):
    pass


@override_settings(CACHES=caches(f"sqlite:///{SQLITE}"))
class PerfkitSQLiteCacheTests(BaseCacheTests, TestCase):
    pass


@override_settings(CACHES=caches(REDIS))
class PerfkitRedisCacheTests(BaseCacheTests, TestCase):
    pass


@override_settings(CACHES=caches(REDIS, l1="memory://?max_size=10000"))
class PerfkitTieredCacheTests(BaseCacheTests, TestCase):
    pass


class AsyncSkips:
    """The tests the async API cannot pass, by design, each with its reason (the only skips)."""

    _QUERYSET = (
        "pickles a lazy QuerySet, which queries the database: in an async context Django refuses that "
        "(SynchronousOnlyOperation), as it refuses any query there; the sync API pickles it in the "
        "caller's thread"
    )

    @unittest.skip(_QUERYSET)
    def test_cache_write_for_model_instance_with_deferred(self):
        pass

    @unittest.skip(_QUERYSET)
    def test_cache_read_for_model_instance_with_deferred(self):
        pass


@override_settings(CACHES=caches("memory://", backend=ASYNC))
class PerfkitAsyncMemoryCacheTests(AsyncSkips, BaseCacheTests, TestCase):
    pass


@override_settings(CACHES=caches(REDIS, backend=ASYNC, l1="memory://?max_size=10000"))
class PerfkitAsyncTieredCacheTests(AsyncSkips, BaseCacheTests, TestCase):
    pass
