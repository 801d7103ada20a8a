"""The demo as a Django project: the same support-ticket tables, URL paths and JSON as `perfkit.demo.app`.

`perfkit demo --django` serves `perfkit.demo.django_app.asgi:application` under uvicorn (ASGI) and runs
`python -m django perfkit_worker --settings=perfkit.demo.django_app.settings`; everything else (the
seeder, the measurement, the checks, the table) is the FastAPI demo's. Its parts are `perfkit.django`'s:
`PerfkitMiddleware`, the `PerfkitCache` backend, the ORM invalidation, the jobs and the monitor URLs.
"""
