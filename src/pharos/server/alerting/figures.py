"""The figures a rule reads, computed from rollup rows (pure).

One :class:`Figures` per evaluation cycle holds the rollup rows of each distinct window (read once
for every rule that uses that window, see :func:`read_plan`) and computes any
:class:`~.language.Series` for any group of labels. 1,000 rules over 50 agents share the work:

- each window's rows are added up once into *cells*, one per (agent, model, kind), and every
  scope a rule asks about (an agent, a model, both, everything) is a sum of a few cells;
- a latency histogram is merged only for the scopes a percentile (or a latency SLO) reads, once
  per (window, scope), and :class:`HistogramCache` carries them to the next cycle, where only
  the rows that entered or left the window since (by content: a row whose counts changed is one
  leaving and one entering) are added or taken away;
- :meth:`Figures.columns` gives each ``by`` clause its groups and a column of values per
  :class:`~.language.Series` (one value per group), shared by every rule with the same groups;
  :func:`~.language.compile_columns` evaluates a rule over those columns.

The arithmetic is the analytics room's (``summary.aggregate``'s definitions,
``histogram.quantile``), so a rule sees the same numbers as the dashboard. Sums of milliseconds
are floats added in another order than one pass over the rows (by cell, then cells), as rows
already come in an order no query promises: they may differ from the dashboard's in the last
bits; every count, token, cost and histogram is an integer and identical.
"""

from __future__ import annotations

import bisect
import statistics
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter

from pharos.server.alerting.language import ANOMALY_HISTORY as N
from pharos.server.alerting.language import SLO_FUNCS, Budget, Series, Value
from pharos.server.analytics import histogram as hist
from pharos.server.analytics.rollups import REQUEST, cover
from pharos.server.analytics.summary import MODEL_CALL_KINDS, Aggregate
from pharos.server.slo import core as slo_core

_QUANTILES = {"latency_p50": 0.5, "latency_p90": 0.9, "latency_p95": 0.95, "latency_p99": 0.99}
_NEEDS_HISTOGRAM = frozenset(_QUANTILES)
Scope = tuple[str | None, str | None]  # (agent, model) filter; None = any
#: A rollup row: a ``summary.Row`` or the plain tuple of the same columns (what the engine
#: reads: no object per row to build, and plain tuples of numbers and text are not tracked by
#: the garbage collector). Read by position only.
Row = tuple[int, str, str, str, int, int, float, float, int, int, int, int, str]
_BUCKET = itemgetter(0)
_COUNT, _ERRORS, _DURATION_SUM, _DURATION_MAX = (itemgetter(i) for i in (4, 5, 6, 7))
_INPUT, _OUTPUT, _CACHED, _COST = (itemgetter(i) for i in (8, 9, 10, 11))


# -- reading ------------------------------------------------------------------------------------


def read_plan(windows: Iterable[int], end_s: int) -> list[tuple[str, int, int]]:
    """The (resolution, start, end) blocks to read so that every window ending at ``end_s`` can
    be cut from them: each window's :func:`~pharos.server.analytics.rollups.cover`, merged per
    table where blocks overlap or touch (5m, 10m, 15m and 1h are all the last hour's minutes)."""
    by_table: dict[str, list[tuple[int, int]]] = {}
    for w in windows:
        for name, lo, hi in cover(end_s - w, end_s):
            by_table.setdefault(name, []).append((lo, hi))
    out: list[tuple[str, int, int]] = []
    for name, spans in sorted(by_table.items()):
        spans.sort()
        lo, hi = spans[0]
        for a, b in spans[1:]:
            if a <= hi:
                hi = max(hi, b)
            else:
                out.append((name, lo, hi))
                lo, hi = a, b
        out.append((name, lo, hi))
    return out


def cut_windows(
    blocks: Mapping[tuple[str, int, int], Sequence[Row]], windows: Iterable[int], end_s: int
) -> dict[int, list[Row]]:
    """Each window's rows out of the blocks of :func:`read_plan` (read with those bounds): the
    same rows as reading the window's own cover."""
    ordered: dict[tuple[str, int, int], tuple[list[Row], list[int]]] = {}
    for block, rows in blocks.items():
        rows = sorted(rows, key=_BUCKET)
        ordered[block] = (rows, [r[0] for r in rows])
    out: dict[int, list[Row]] = {}
    for w in windows:
        picked: list[Row] = []
        for name, lo, hi in cover(end_s - w, end_s):
            for (bname, blo, bhi), (rows, starts) in ordered.items():
                if bname == name and blo <= lo and hi <= bhi:
                    picked += rows[bisect.bisect_left(starts, lo) : bisect.bisect_left(starts, hi)]
                    break
            else:
                raise ValueError(f"no block read covers {name} [{lo}, {hi})")
        out[w] = picked
    return out


# -- cells ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cell:
    """The rows of one (agent, model, kind) in a window, added up."""

    agent: str
    model: str
    kind: str
    rows: list[Row]
    count: int = 0
    errors: int = 0
    duration_sum_ms: float = 0.0
    duration_max_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0

    def total(self) -> None:
        rows = self.rows
        self.count = sum(map(_COUNT, rows))
        self.errors = sum(map(_ERRORS, rows))
        self.duration_sum_ms = sum(map(_DURATION_SUM, rows), 0.0)
        self.duration_max_ms = max(map(_DURATION_MAX, rows), default=0.0)
        self.input_tokens = sum(map(_INPUT, rows))
        self.output_tokens = sum(map(_OUTPUT, rows))
        self.cached_tokens = sum(map(_CACHED, rows))
        self.cost_nanousd = sum(map(_COST, rows))


@dataclass(slots=True)
class _Window:
    rows: Sequence[Row]
    cells: list[_Cell] = field(default_factory=list)
    by_agent: dict[str, list[_Cell]] = field(default_factory=dict)
    by_model: dict[str, list[_Cell]] = field(default_factory=dict)
    by_agent_model: dict[tuple[str, str], list[_Cell]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Sequence[Row]) -> _Window:
        window = cls(rows)
        grouped: dict[tuple[str, str, str], list[Row]] = {}
        for row in rows:
            key = (row[1], row[2], row[3])
            found = grouped.get(key)
            if found is None:
                grouped[key] = [row]
            else:
                found.append(row)
        for (agent, model, kind), cell_rows in grouped.items():
            cell = _Cell(agent, model, kind, cell_rows)
            cell.total()
            window.cells.append(cell)
            window.by_agent.setdefault(agent, []).append(cell)
            window.by_model.setdefault(model, []).append(cell)
            window.by_agent_model.setdefault((agent, model), []).append(cell)
        return window

    def scope(self, agent: str | None, model: str | None) -> list[_Cell]:
        if agent is None:
            return self.cells if model is None else self.by_model.get(model, [])
        if model is None:
            return self.by_agent.get(agent, [])
        return self.by_agent_model.get((agent, model), [])


def _is_request(kind: str, model_scope: bool) -> bool:
    """``summary.aggregate``'s definition: with a model filter the requests are model calls."""
    return kind in MODEL_CALL_KINDS if model_scope else kind == REQUEST


def histogram_scopes(row: Row) -> tuple[Scope, ...]:
    """The scopes whose latency histogram counts ``row`` (as requests, by :func:`_is_request`):
    a request row in its agent's and in all; a model call in its model's and its agent's model's;
    a tool call in none."""
    agent, model, kind = row[1], row[2], row[3]
    if kind == REQUEST:
        return (agent, None), (None, None)
    if kind in MODEL_CALL_KINDS:
        return (agent, model), (None, model)
    return ()


# -- histograms carried between cycles ----------------------------------------------------------


@dataclass(slots=True)
class _Carried:
    rows: set[Row]
    histograms: dict[Scope, Counter[int]]


class HistogramCache:
    """The merged latency histograms of one cycle's (window, scope)s, kept for the next one.

    Keyed by the content of the rows: the next cycle diffs its rows of the window against the
    rows these histograms were merged from and adds the rows that entered, takes away those that
    left (counts are integers: exact). Past minutes keep their rows, so a cycle merges only the
    minutes that moved into the window or changed. Nothing can go stale: a row rewritten with new
    counts differs in content. A window whose rows repeat a row (which a set cannot diff), that
    changed for more than half its rows, or a scope the last cycle did not merge, is merged
    afresh. One engine owns one cache; :meth:`Figures.keep` hands the new histograms over."""

    def __init__(self) -> None:
        self._windows: dict[int, _Carried] = {}
        self._busy = False  # histograms taken but not handed back: an interrupted cycle

    def take(self, window_s: int) -> _Carried | None:
        return self._windows.pop(window_s, None)

    def start(self) -> None:
        if self._busy:  # the last cycle stopped half-way through updating: start afresh
            self._windows.clear()
        self._busy = True

    def keep(self, carried: Mapping[int, _Carried]) -> None:
        self._windows = dict(carried)
        self._busy = False

    def __len__(self) -> int:
        return sum(len(c.histograms) for c in self._windows.values())


def _add_rows(target: Counter[int], rows: Iterable[Row], sign: int) -> None:
    for row in rows:
        if row[12]:
            for bucket, n in hist.loads_many((row[12],)).items():
                target[bucket] += sign * n


# -- figures ------------------------------------------------------------------------------------


class Figures:
    def __init__(
        self,
        rows_by_window: Mapping[int, Sequence[Row]],
        history: Mapping[int, Sequence[Row]] | None = None,
        end_s: int = 0,
        slos: Sequence[slo_core.SloDef] = (),
        cache: HistogramCache | None = None,
        budget: Callable[[str | None, bool], Value] | None = None,
    ) -> None:
        self.rows = rows_by_window
        # budget_burn() (or, forecast=True, budget_forecast_burn()) of an agent (None: of all)
        self.budget = budget
        self.slos = slos  # slo_burn() / slo_attainment(): the SLOs defined (slo/)
        # anomaly(): minute rows of the ANOMALY_HISTORY windows before each window, by window
        self.history = history or {}
        self.end_s = end_s
        self.cache = cache
        if cache is not None:
            cache.start()
        self._past: dict[tuple[int, int], Figures] = {}
        self._windows: dict[int, _Window] = {}
        self._aggs: dict[tuple[int, str | None, str | None], Aggregate] = {}
        self._with_histogram: set[tuple[int, str | None, str | None]] = set()
        self._values: dict[tuple[str, int, str | None, str | None], float | None] = {}
        self._groups: dict[tuple[tuple[str, ...], tuple[int, ...]], list[dict[str, str]]] = {}
        self._key_sets: dict[tuple[int, tuple[str, ...]], set[tuple[str, ...]]] = {}
        self._columns: dict[tuple[tuple[str, ...], tuple[int, ...]], GroupColumns] = {}
        # Histograms: what the last cycle left (by window), and what this one merged.
        self._carried: dict[int, _Carried | None] = {}
        self._row_sets: dict[int, set[Row]] = {}
        self._changes: dict[int, dict[Scope, tuple[list[Row], list[Row]]]] = {}
        self._merged: dict[int, dict[Scope, Counter[int]]] = {}

    # -- groups ------------------------------------------------------------------------------
    def groups(
        self, by: tuple[str, ...], windows: Iterable[int], agents: Iterable[str] = ()
    ) -> list[dict[str, str]]:
        """The label sets a ``by`` clause yields: every agent (or model, or agent+model) seen in
        the rule's windows, plus the ``agents`` known to exist (so ``requests(15m) == 0 by
        agent`` sees an agent that went silent). Cached: rules share them."""
        if not by:
            return [{}]
        window_key = tuple(sorted(windows))
        cache_key = (by, window_key)
        cached = self._groups.get(cache_key)
        if cached is not None:
            return cached
        keys: set[tuple[str, ...]] = set()
        for w in window_key:
            keys |= self._keys(w, by)
        if by == ("agent",):
            keys.update((a,) for a in agents)
        out = [dict(zip(by, key, strict=True)) for key in sorted(keys)]
        self._groups[cache_key] = out
        return out

    def _keys(self, window_s: int, by: tuple[str, ...]) -> set[tuple[str, ...]]:
        cached = self._key_sets.get((window_s, by))
        if cached is None:
            cells = self._window(window_s).cells
            if by == ("agent",):
                cached = {(c.agent,) for c in cells}
            elif by == ("model",):
                cached = {(c.model,) for c in cells if c.model}
            else:
                cached = {tuple(getattr(c, label) for label in by) for c in cells if c.model}
            self._key_sets[(window_s, by)] = cached
        return cached

    def columns(
        self, by: tuple[str, ...], windows: Iterable[int], agents: Iterable[str] = ()
    ) -> GroupColumns:
        """The groups of :meth:`groups` and the columns of values over them, shared by every rule
        with the same ``by`` and windows (``agents``: the same for every call of a cycle)."""
        window_key = tuple(sorted(set(windows)))
        found = self._columns.get((by, window_key))
        if found is None:
            found = GroupColumns(self, self.groups(by, window_key, agents))
            self._columns[(by, window_key)] = found
        return found

    # -- values ------------------------------------------------------------------------------
    def value(self, s: Series, group: Mapping[str, str]) -> float | None:
        agent = s.agent if s.agent is not None else group.get("agent")
        model = s.model if s.model is not None else group.get("model")
        if s.anomaly:
            return self._anomaly(s, group)
        if s.metric in SLO_FUNCS:
            return self._slo(s, agent)
        key = (s.metric, s.window_s, agent, model)
        try:
            return self._values[key]
        except KeyError:
            pass
        agg = self._aggregate(s.window_s, agent, model, s.metric in _NEEDS_HISTOGRAM)
        result = _metric(s.metric, agg, s.window_s)
        self._values[key] = result
        return result

    def _anomaly(self, s: Series, group: Mapping[str, str]) -> float | None:
        """(now - mean) / stdev of the same figure over the previous windows; no data with
        fewer than 3 past values or no spread."""
        plain = replace(s, anomaly=False)
        current = self.value(plain, group)
        if current is None:
            return None
        past = [self._past_figures(s.window_s, k).value(plain, group) for k in range(1, 1 + N)]
        values = [v for v in past if v is not None]
        if len(values) < 3:
            return None
        spread = statistics.pstdev(values)
        if spread == 0:
            return None
        return (current - statistics.fmean(values)) / spread

    def _slo(self, s: Series, agent: str | None) -> float | None:
        """The burn rate (highest) or attainment (lowest) of the matching SLOs over the window:
        the SLO named by slo=, else those of the agent (of agent= or the group), else all."""
        if s.slo is not None:
            chosen = [d for d in self.slos if d.name == s.slo]
        else:
            chosen = [d for d in self.slos if agent is None or d.agent == agent]
        values: list[float] = []
        for d in chosen:
            agg = self._aggregate(s.window_s, d.agent, None, d.kind == "latency")
            t = slo_core.tally(agg, d)
            value = (
                slo_core.burn_rate(t, d.objective)
                if s.metric == "slo_burn"
                else slo_core.attainment(t)
            )
            if value is not None:
                values.append(value)
        if not values:
            return None
        return max(values) if s.metric == "slo_burn" else min(values)

    def _past_figures(self, window_s: int, k: int) -> Figures:
        """A Figures over the window ``k`` windows back (rows cut from the history)."""
        key = (window_s, k)
        fig = self._past.get(key)
        if fig is None:
            hi = self.end_s - k * window_s
            lo = hi - window_s
            rows = [r for r in self.history.get(window_s, ()) if lo <= r[0] < hi]
            fig = self._past[key] = Figures({window_s: rows}, slos=self.slos)
        return fig

    def _window(self, window_s: int) -> _Window:
        found = self._windows.get(window_s)
        if found is None:
            found = self._windows[window_s] = _Window.of(self.rows.get(window_s, []))
        return found

    def _aggregate(
        self, window_s: int, agent: str | None, model: str | None, histograms: bool
    ) -> Aggregate:
        """``summary.aggregate`` of the scope's rows (``histograms``: with the latency
        histogram of its requests), from the window's cells."""
        key = (window_s, agent, model)
        agg = self._aggs.get(key)
        if agg is None:
            agg = Aggregate()
            model_scope = model is not None
            for c in self._window(window_s).scope(agent, model):
                kind = c.kind
                if _is_request(kind, model_scope):
                    agg.requests += c.count
                    agg.errors += c.errors
                    agg.duration_sum_ms += c.duration_sum_ms
                    agg.duration_max_ms = max(agg.duration_max_ms, c.duration_max_ms)
                if kind == "llm":
                    agg.llm_calls += c.count
                elif kind == "tool":
                    agg.tool_calls += c.count
                if kind in MODEL_CALL_KINDS:
                    agg.input_tokens += c.input_tokens
                    agg.output_tokens += c.output_tokens
                    agg.cached_tokens += c.cached_tokens
                    agg.cost_nanousd += c.cost_nanousd
            self._aggs[key] = agg
        if histograms and key not in self._with_histogram:
            agg.histogram = self._histogram(window_s, agent, model)
            self._with_histogram.add(key)
        return agg

    def _histogram(self, window_s: int, agent: str | None, model: str | None) -> Counter[int]:
        """The merged latency histogram of a scope's requests: carried from the last cycle and
        brought up to date, or merged from the rows."""
        scope = (agent, model)
        merged = self._merged.setdefault(window_s, {})
        carried = self._carried_for(window_s)
        if carried is not None and scope in carried.histograms:
            h = carried.histograms[scope]
            entered, left = self._changes[window_s].get(scope, ([], []))
            _add_rows(h, entered, 1)
            _add_rows(h, left, -1)
            if left:
                for bucket in [b for b, n in h.items() if n <= 0]:
                    if h[bucket] < 0:  # cannot happen: the rows taken away were added before
                        h = self._fresh_histogram(window_s, agent, model)
                        break
                    del h[bucket]
        else:
            h = self._fresh_histogram(window_s, agent, model)
        merged[scope] = h
        return h

    def _fresh_histogram(self, window_s: int, agent: str | None, model: str | None) -> Counter[int]:
        model_scope = model is not None
        texts = [
            row[12]
            for c in self._window(window_s).scope(agent, model)
            if _is_request(c.kind, model_scope)
            for row in c.rows
        ]
        return hist.loads_many(texts)

    def _carried_for(self, window_s: int) -> _Carried | None:
        """What the last cycle merged for this window, with the rows that changed since grouped
        by the scopes they count in (once per window and cycle)."""
        if window_s in self._carried:
            return self._carried[window_s]
        if self.cache is None:  # nothing carried, nothing to keep
            self._carried[window_s] = None
            return None
        carried = self.cache.take(window_s)
        rows = self._window(window_s).rows
        now = self._row_sets[window_s] = set(rows)
        if carried is not None and len(now) == len(rows):
            changed = now ^ carried.rows  # what entered or left (compares each row once)
            if 2 * len(changed) > len(rows):
                carried = None  # most of the window is new: merging afresh is cheaper
            else:
                changes: dict[Scope, tuple[list[Row], list[Row]]] = {}
                for row in changed:
                    side = 0 if row in now else 1  # entered, or left
                    for scope in histogram_scopes(row):
                        pair = changes.get(scope)
                        if pair is None:
                            pair = changes[scope] = ([], [])
                        pair[side].append(row)
                self._changes[window_s] = changes
        else:
            carried = None
        self._carried[window_s] = carried
        return carried

    def keep(self) -> None:
        """Hand this cycle's merged histograms to the cache for the next cycle (call once the
        cycle's evaluation is over; a cycle that never calls it leaves the cache to start
        afresh)."""
        if self.cache is None:
            return
        kept = {}
        for w, merged in self._merged.items():
            rows = self._row_sets[w]
            if len(rows) == len(self._window(w).rows):  # no repeated row: the next can diff
                kept[w] = _Carried(rows, merged)
        self.cache.keep(kept)


class GroupColumns:
    """The groups of one ``by`` clause over one set of windows, and per :class:`Series` (or
    :class:`Budget`) the column of its values over those groups, computed once per cycle."""

    __slots__ = ("_budgets", "_figures", "_series", "groups", "keys")

    def __init__(self, figures: Figures, groups: list[dict[str, str]]) -> None:
        # Figures keeps its GroupColumns: a weak reference back, so that a cycle's figures go
        # when the cycle ends, not at the next full garbage collection (which is then costly).
        self._figures = weakref.ref(figures)
        self.groups = groups
        self.keys = [tuple(g.values()) for g in groups]
        self._series: dict[Series, list[Value]] = {}
        self._budgets: dict[Budget, list[Value]] = {}

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def figures(self) -> Figures:
        figures = self._figures()
        if figures is None:
            raise ReferenceError("the cycle's Figures are gone")
        return figures

    def series(self, s: Series) -> list[Value]:
        found = self._series.get(s)
        if found is None:
            value = self.figures.value
            found = self._series[s] = [value(s, g) for g in self.groups]
        return found

    def budget(self, b: Budget) -> list[Value]:
        found = self._budgets.get(b)
        if found is None:
            of = self.figures.budget
            found = self._budgets[b] = [
                None
                if of is None
                else of(b.agent if b.agent is not None else g.get("agent"), b.forecast)
                for g in self.groups
            ]
        return found


def _metric(metric: str, agg: Aggregate, window_s: int) -> float | None:
    if metric == "requests":
        return float(agg.requests)
    if metric == "errors":
        return float(agg.errors)
    if metric == "error_rate":
        return 100.0 * agg.errors / agg.requests if agg.requests else None
    if metric == "throughput":
        return agg.requests / window_s
    if metric == "latency_avg":
        return agg.duration_sum_ms / agg.requests if agg.requests else None
    if metric in _QUANTILES:
        return hist.quantile(agg.histogram, _QUANTILES[metric], max_ms=agg.duration_max_ms)
    if metric == "tokens":
        return float(agg.input_tokens + agg.output_tokens)
    if metric == "input_tokens":
        return float(agg.input_tokens)
    if metric == "output_tokens":
        return float(agg.output_tokens)
    if metric == "cached_tokens":
        return float(agg.cached_tokens)
    if metric == "cost":
        return agg.cost_nanousd / 1e9
    raise ValueError(f"unknown metric {metric!r}")
