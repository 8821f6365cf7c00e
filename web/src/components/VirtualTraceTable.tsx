import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { KeyboardEvent } from "react";
import { Link, useLocation, useNavigate } from "react-router-dom";
import type { TraceSummary } from "../api";
import { fmtAgo, fmtCount, fmtMs, fmtUsd, visible } from "../format";
import { carry } from "../query";
import { moveActive, needMore, scrollToShow, visibleRange } from "../virtual";
import { StatusBadge } from "./TraceTable";

export const ROW_HEIGHT = 52;
const OVERSCAN = 8;
/** Ask for the next page when the rendered rows come this close to the end. */
const PREFETCH_ROWS = 60;

/** The room the rows outside the window would take, so the scrollbar is true to the list. */
function Spacer({ height }: { height: number }) {
  return (
    <tr className="vt-spacer" aria-hidden="true">
      <td colSpan={8} style={{ height }} />
    </tr>
  );
}

/**
 * The traces list, virtualised: only the rows in view (and a few around them) are in the DOM,
 * whatever the number loaded; scrolling near the end loads the next page by cursor. Keyboard:
 * focus the list, then ↑/↓, Page Up/Down, Home/End move the active row, Enter opens it.
 */
export function VirtualTraceTable({
  items,
  hasMore,
  loading,
  onMore,
  added,
  testId,
}: {
  items: TraceSummary[];
  hasMore: boolean;
  loading: boolean;
  onMore: () => void;
  /** Rows just put on top by a live refresh (the view stays where it was). */
  added: { n: number; seq: number };
  testId?: string;
}) {
  const { search } = useLocation();
  const navigate = useNavigate();
  const keep = carry(search);
  const box = useRef<HTMLDivElement>(null);
  const head = useRef<HTMLTableSectionElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [header, setHeader] = useState(33);
  const [active, setActive] = useState(-1);
  const frame = useRef<number | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => {
      const h = head.current?.offsetHeight ?? 33;
      setHeader(h);
      setViewport(el.clientHeight - h);
    };
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    measure();
    return () => ro.disconnect();
  }, []);

  // New rows on top: keep the rows the reader is looking at in place (unless at the very top,
  // where the newest should show), and keep the same trace active.
  const lastSeq = useRef(added.seq);
  useLayoutEffect(() => {
    if (added.seq === lastSeq.current) return;
    lastSeq.current = added.seq;
    const el = box.current;
    if (!el || added.n === 0) return;
    if (el.scrollTop > 0) {
      el.scrollTop += added.n * ROW_HEIGHT;
      setScrollTop(el.scrollTop);
    }
    setActive((a) => (a >= 0 ? a + added.n : a));
  }, [added]);

  const range = visibleRange(scrollTop, viewport, ROW_HEIGHT, items.length, OVERSCAN);
  const wantMore = needMore(range, items.length, PREFETCH_ROWS, hasMore, loading);
  useEffect(() => {
    if (wantMore) onMore();
  }, [wantMore, onMore]);

  const onScroll = useCallback(() => {
    if (frame.current !== null) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = null;
      if (box.current) setScrollTop(box.current.scrollTop);
    });
  }, []);
  useEffect(() => () => (frame.current !== null ? cancelAnimationFrame(frame.current) : undefined), []);

  const show = (index: number) => {
    const el = box.current;
    if (!el) return;
    const next = scrollToShow(index, el.scrollTop, el.clientHeight, ROW_HEIGHT, header);
    if (next !== el.scrollTop) {
      el.scrollTop = next;
      setScrollTop(next);
    }
  };

  const onKey = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === "Enter" && active >= 0 && active < items.length) {
      e.preventDefault();
      navigate(`/traces/${items[active].trace_id}${keep}`);
      return;
    }
    const page = Math.max(1, Math.floor(viewport / ROW_HEIGHT) - 1);
    const next = moveActive(e.key, active, items.length, page);
    if (next === null) return;
    e.preventDefault();
    setActive(next);
    show(next);
  };

  const rows = items.slice(range.start, range.end);
  const activeId = active >= 0 && active < items.length ? `trace-row-${items[active].trace_id}` : undefined;
  return (
    <div
      ref={box}
      className="vt-scroll"
      onScroll={onScroll}
      onKeyDown={onKey}
      tabIndex={0}
      role="grid"
      aria-label="Traces (arrow keys move, Enter opens)"
      aria-rowcount={hasMore ? -1 : items.length + 1}
      aria-activedescendant={activeId}
      data-testid={testId}
      data-loaded={items.length}
    >
      <table className="table vt-table" role="presentation">
        <colgroup>
          <col />
          <col className="vt-agent" />
          <col className="vt-status" />
          <col className="vt-num" />
          <col className="vt-small" />
          <col className="vt-num" />
          <col className="vt-num" />
          <col className="vt-when" />
        </colgroup>
        <thead ref={head}>
          <tr role="row" aria-rowindex={1}>
            <th scope="col" role="columnheader">Trace</th>
            <th scope="col" role="columnheader">Agent</th>
            <th scope="col" role="columnheader">Status</th>
            <th scope="col" role="columnheader" className="num">Duration</th>
            <th scope="col" role="columnheader" className="num">Spans</th>
            <th scope="col" role="columnheader" className="num">Tokens</th>
            <th scope="col" role="columnheader" className="num">Cost</th>
            <th scope="col" role="columnheader" className="num">Started</th>
          </tr>
        </thead>
        <tbody>
          {range.start > 0 ? <Spacer height={range.start * ROW_HEIGHT} /> : null}
          {rows.map((t, k) => {
            const i = range.start + k;
            return (
              <tr
                key={t.trace_id}
                id={`trace-row-${t.trace_id}`}
                data-trace-id={t.trace_id}
                data-index={i}
                role="row"
                aria-rowindex={i + 2}
                aria-selected={i === active}
                className={i === active ? "vt-row active" : "vt-row"}
                onClick={() => setActive(i)}
              >
                <td className="vt-name" role="gridcell">
                  <Link to={`/traces/${t.trace_id}${keep}`} className="trace-link" tabIndex={-1}>
                    <span className="tele">{visible(t.name, 200)}</span>
                  </Link>
                  {t.error_message ? <div className="cell-error tele">{visible(t.error_message, 200)}</div> : null}
                </td>
                <td role="gridcell">
                  <span className="tele vt-clip">{visible(t.agent, 80)}</span>
                </td>
                <td role="gridcell">
                  <StatusBadge status={t.status} />
                </td>
                <td className="num" role="gridcell">
                  {fmtMs(t.duration_ms)}
                </td>
                <td className="num" role="gridcell">
                  {fmtCount(t.span_count)}
                </td>
                <td className="num" role="gridcell">
                  {fmtCount(t.tokens.total)}
                </td>
                <td className="num" role="gridcell">
                  {fmtUsd(t.cost_usd)}
                </td>
                <td className="num" role="gridcell" title={t.start_time}>
                  {fmtAgo(t.start_time)}
                </td>
              </tr>
            );
          })}
          {range.end < items.length ? <Spacer height={(items.length - range.end) * ROW_HEIGHT} /> : null}
        </tbody>
      </table>
      {hasMore ? (
        <p className="muted small vt-more" role="status">
          {loading ? "Loading more…" : "Scroll for more"}
        </p>
      ) : null}
    </div>
  );
}
