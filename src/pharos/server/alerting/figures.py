"""The figures a rule reads, computed from rollup rows (pure).

One :class:`Figures` per evaluation cycle holds the rollup rows of each distinct window (read once
for every rule that uses that window) and computes any :class:`~.language.Series` for any group
of labels, caching partitions and aggregates so 1,000 rules over 50 agents share the work. The
arithmetic is the analytics room's (``summary.aggregate`` and ``histogram.quantile``), so a rule
sees the same numbers as the dashboard.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from pharos.server.alerting.language import ANOMALY_HISTORY as N
from pharos.server.alerting.language import SLO_FUNCS, Series
from pharos.server.analytics import histogram as hist
from pharos.server.analytics.summary import Aggregate, RollupRow, aggregate
from pharos.server.slo import core as slo_core

_QUANTILES = {"latency_p50": 0.5, "latency_p90": 0.9, "latency_p95": 0.95, "latency_p99": 0.99}
_NEEDS_HISTOGRAM = frozenset(_QUANTILES)
Scope = tuple[str | None, str | None]  # (agent, model) filter; None = any


class Figures:
    def __init__(
        self,
        rows_by_window: Mapping[int, list[RollupRow]],
        history: Mapping[int, list[RollupRow]] | None = None,
        end_s: int = 0,
        slos: Sequence[slo_core.SloDef] = (),
    ) -> None:
        self.rows = rows_by_window
        self.slos = slos  # slo_burn() / slo_attainment(): the SLOs defined (slo/)
        # anomaly(): minute rows of the ANOMALY_HISTORY windows before each window, by window
        self.history = history or {}
        self.end_s = end_s
        self._past: dict[tuple[int, int], Figures] = {}
        self._parts: dict[tuple[int, str], dict[object, list[RollupRow]]] = {}
        self._aggs: dict[tuple[int, str | None, str | None, bool], Aggregate] = {}
        self._values: dict[tuple[str, int, str | None, str | None], float | None] = {}
        self._groups: dict[tuple[tuple[str, ...], tuple[int, ...]], list[dict[str, str]]] = {}
        self._key_sets: dict[tuple[int, tuple[str, ...]], set[tuple[str, ...]]] = {}

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
            rows = self.rows.get(window_s, ())
            if by == ("agent",):
                cached = {(row.agent,) for row in rows}
            elif by == ("model",):
                cached = {(row.model,) for row in rows if row.model}
            else:
                cached = {tuple(getattr(row, label) for label in by) for row in rows if row.model}
            self._key_sets[(window_s, by)] = cached
        return cached

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
            rows = [r for r in self.history.get(window_s, ()) if lo <= r.bucket_start < hi]
            fig = self._past[key] = Figures({window_s: rows}, slos=self.slos)
        return fig

    def _aggregate(
        self, window_s: int, agent: str | None, model: str | None, histograms: bool
    ) -> Aggregate:
        key = (window_s, agent, model, histograms)
        agg = self._aggs.get(key)
        if agg is None:
            rows = self._rows(window_s, agent, model)
            agg = aggregate(rows, model_scope=model is not None, histograms=histograms)
            self._aggs[key] = agg
        return agg

    def _rows(self, window_s: int, agent: str | None, model: str | None) -> list[RollupRow]:
        rows = self.rows.get(window_s, [])
        if agent is None and model is None:
            return rows
        if model is None:
            return self._partition(window_s, "agent").get(agent, [])
        if agent is None:
            return self._partition(window_s, "model").get(model, [])
        return self._partition(window_s, "agent_model").get((agent, model), [])

    def _partition(self, window_s: int, by: str) -> dict[object, list[RollupRow]]:
        key = (window_s, by)
        part = self._parts.get(key)
        if part is None:
            grouped: defaultdict[object, list[RollupRow]] = defaultdict(list)
            for row in self.rows.get(window_s, ()):
                if by == "agent":
                    grouped[row.agent].append(row)
                elif by == "model":
                    grouped[row.model].append(row)
                else:
                    grouped[(row.agent, row.model)].append(row)
            part = self._parts[key] = dict(grouped)
        return part


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
