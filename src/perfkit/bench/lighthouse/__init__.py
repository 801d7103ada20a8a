"""`perfkit lighthouse URL --budget performance>=90 --budget lcp<2500ms`: a Lighthouse run (the npm
package, with Debian's Chromium) against budgets in `perfkit bench`'s threshold syntax, folded into
perfkit's JSON report (and a saved monitor report). See docs/rum.md."""

from perfkit.bench.lighthouse.budgets import Budget, evaluate, parse_budget
from perfkit.bench.lighthouse.runner import find_chromium, find_lighthouse, run_lighthouse, summarize

__all__ = [
    "Budget",
    "evaluate",
    "find_chromium",
    "find_lighthouse",
    "parse_budget",
    "run_lighthouse",
    "summarize",
]
