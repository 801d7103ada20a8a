"""The public seams of the web stack's redesign (issue 15): names that moved, one path per decision."""

from __future__ import annotations

import subprocess
import sys

from perfkit.metrics import OVERFLOW, Collector


def test_instrument_stays_the_function_whatever_the_import_order() -> None:
    """`perfkit.instrument` is the function even after `import perfkit.instrument` or the old path."""
    code = (
        "import perfkit.instrument, perfkit.web.instrument, perfkit;"
        "from perfkit.web import instrument as a; from perfkit.web.instrument import instrument as b;"
        "print(callable(perfkit.instrument), a is b is perfkit.instrument)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_histogram_series_handle_observes_like_observe() -> None:
    """`Histogram.series_for` + `HistogramSeries.observe` leave the same rows as `observe`, overflow too."""
    a, b = Collector(max_series=1), Collector(max_series=1)
    ha = a.histogram("h", ("k",), buckets=(1.0, 2.0), locked=False)
    hb = b.histogram("h", ("k",), buckets=(1.0, 2.0), locked=False)
    first, spill = ha.series_for(("x",), 1.5), ha.series_for(("y",), 3.0)
    first.observe(0.5)
    spill.observe(0.1)
    for labels, value in ((("x",), 1.5), (("y",), 3.0), (("x",), 0.5), (("y",), 0.1)):
        hb.observe(labels, value)
    assert ha.series == hb.series
    assert ha.extremes == hb.extremes
    assert set(ha.series) == {("x",), (OVERFLOW,)}


def test_collector_attaches_a_hook_once_per_source() -> None:
    """`Collector.attach` says yes once per (source, hook): what keeps job events from counting twice."""

    class Source:
        pass

    collector, source = Collector(), Source()
    assert collector.attach(source, "jobs") is True
    assert collector.attach(source, "jobs") is False
    assert collector.attach(source, "other") is True
    assert Collector().attach(source, "jobs") is True
