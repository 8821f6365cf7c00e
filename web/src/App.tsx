import { NavLink, Route, Routes, useLocation } from "react-router-dom";
import { AuthGate } from "./components/AuthGate";
import { LiveProvider, useFilters, useLive, useTheme } from "./hooks";
import type { Mode } from "./live";
import { useState } from "react";
import { RANGES, carry, liveWindow, rangeApplies, rangeSeconds } from "./query";
import { OverviewPage } from "./pages/Overview";
import { TracesPage } from "./pages/Traces";
import { TracePage } from "./pages/Trace";
import { AgentsPage } from "./pages/Agents";
import { AgentPage } from "./pages/Agent";
import { AlertsPage } from "./pages/Alerts";
import { CostsPage } from "./pages/Costs";
import { SettingsPage } from "./pages/Settings";
import { LogsPage } from "./pages/Logs";
import { ErrorGroupPage, ErrorsPage } from "./pages/Errors";
import { AlertDetailPage } from "./pages/AlertDetail";


const MODE_TEXT: Record<Mode, string> = {
  connecting: "Connecting…",
  websocket: "Live (WebSocket)",
  sse: "Live (SSE)",
  polling: "Polling every 2 s",
};

function Connection() {
  const { mode } = useLive();
  return (
    <span className={`conn conn-${mode}`} data-testid="connection" data-mode={mode} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      {MODE_TEXT[mode]}
    </span>
  );
}

function RangePicker() {
  const [filters, set] = useFilters();
  const custom = !(RANGES as readonly string[]).includes(filters.range);
  const [draft, setDraft] = useState(custom ? filters.range : "");
  const [bad, setBad] = useState(false);
  return (
    <div className="range-row">
    <div className="range" role="group" aria-label="Time range">
      {RANGES.map((r) => (
        <button
          key={r}
          type="button"
          className={r === filters.range ? "active" : undefined}
          aria-pressed={r === filters.range}
          onClick={() => set({ range: r })}
        >
          {r}
        </button>
      ))}
    </div>
      <form
        className="custom-range"
        onSubmit={(e) => {
          e.preventDefault();
          const v = draft.trim();
          if (rangeSeconds(v) === null) {
            setBad(true);
            return;
          }
          setBad(false);
          set({ range: v });
        }}
      >
        <input
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder="custom: 3h, 30d"
          aria-label="Custom range: minutes, hours or days (m, h, d), up to 400d"
          aria-invalid={bad}
          className={custom ? "active" : undefined}
          size={12}
          maxLength={8}
          data-testid="custom-range"
        />
      </form>
    </div>
  );
}

function Nav() {
  const { search } = useLocation();
  const keep = carry(search);
  const items: [string, string][] = [
    ["/", "Overview"],
    ["/traces", "Traces"],
    ["/logs", "Logs"],
    ["/errors", "Errors"],
    ["/agents", "Agents"],
    ["/alerts", "Alerts"],
    ["/costs", "Costs"],
    ["/settings", "Settings"],
  ];
  return (
    <nav className="nav" aria-label="Main">
      <div className="brand">
        <img src="/favicon.svg" alt="" width={22} height={22} /> Pharos
      </div>
      {items.map(([to, label]) => (
        <NavLink key={to} to={`${to}${keep}`} end={to === "/"} className={({ isActive }) => (isActive ? "active" : undefined)}>
          {label}
        </NavLink>
      ))}
    </nav>
  );
}

function NotFound() {
  return (
    <section className="card">
      <h1>Page not found</h1>
      <p>
        <NavLink to="/">Back to the overview</NavLink>
      </p>
    </section>
  );
}

export function App() {
  return <AuthGate>{(signOut) => <Dashboard signOut={signOut} />}</AuthGate>;
}

function Dashboard({ signOut }: { signOut: (() => void) | null }) {
  const [filters] = useFilters();
  const { pathname } = useLocation();
  const [theme, toggleTheme] = useTheme();
  return (
    <LiveProvider window={liveWindow(filters.range)}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <div className="shell">
        <Nav />
        <div className="main-col">
          <header className="topbar">
            {rangeApplies(pathname) ? <RangePicker /> : <div />}
            <div className="topbar-right">
              <Connection />
              <button type="button" className="theme" onClick={toggleTheme} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
                {theme === "dark" ? "☀ Light" : "☾ Dark"}
              </button>
              {signOut ? (
                <button type="button" onClick={signOut}>
                  Sign out
                </button>
              ) : null}
            </div>
          </header>
          <main id="main" tabIndex={-1}>
            <Routes>
              <Route path="/" element={<OverviewPage />} />
              <Route path="/traces" element={<TracesPage />} />
              <Route path="/traces/:traceId" element={<TracePage />} />
              <Route path="/logs" element={<LogsPage />} />
              <Route path="/errors" element={<ErrorsPage />} />
              <Route path="/errors/:fingerprint" element={<ErrorGroupPage />} />
              <Route path="/agents" element={<AgentsPage />} />
              <Route path="/agents/:agent" element={<AgentPage />} />
              <Route path="/alerts" element={<AlertsPage />} />
              <Route path="/alerts/:alertId" element={<AlertDetailPage />} />
              <Route path="/costs" element={<CostsPage />} />
              <Route path="/settings" element={<SettingsPage />} />
              <Route path="*" element={<NotFound />} />
            </Routes>
          </main>
        </div>
      </div>
    </LiveProvider>
  );
}
