"""Process life: a real os.fork() (gunicorn-style workers) re-arms the SDK in the child; the
interpreter's exit flushes what is queued, and does not hang when the server does.

Each scenario runs in a fresh Python process (the script below), sending to a real local OTLP
receiver in this test process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.sdk.otlp_capture import otlp_capture

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, endpoint: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PHAROS_ENDPOINT": endpoint, "PYTHONPATH": str(ROOT / "src")}
    env.pop("PHAROS_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


FORK = """
    import os, sys
    import pharos

    pharos.init(service_name="forking", schedule_delay=0.05, logs=False)

    @pharos.tool
    def work(who: str) -> str:
        return who

    with pharos.agent(name="parent"):
        work("before fork")
    assert pharos.flush(10)   # the parent's HTTP connection to the server is now open

    with pharos.span("queued in parent at fork"):
        pass                  # still in the parent's queue when it forks
    pid = os.fork()
    if pid == 0:              # the child: no init() call, the SDK re-arms itself
        try:
            with pharos.agent(name="child"):
                work(f"child {os.getpid()}")
            ok = pharos.shutdown(10)
            os._exit(0 if ok and pharos.stats()["spans"]["exported"] >= 2 else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    with pharos.agent(name="parent"):
        work("after fork")
    assert pharos.shutdown(10)
    print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_rearms_the_sdk_in_the_child() -> None:
    with otlp_capture() as capture:
        result = _run(FORK, capture.url)
        assert result.returncode == 0, result.stderr
        assert "child exit 0" in result.stdout
        spans = capture.spans()
    names = [s["name"] for s in spans]
    # Each span exactly once: the child neither lost its own nor re-sent the parent's queue.
    assert sorted(names) == sorted(
        [
            "invoke_agent parent",
            "execute_tool work",
            "queued in parent at fork",
            "invoke_agent child",
            "execute_tool work",
            "invoke_agent parent",
            "execute_tool work",
        ]
    )
    child_tool = next(s for s in spans if s["attributes"].get("gen_ai.agent.name") == "child")
    assert child_tool["name"] == "execute_tool work"


EXIT = """
    import pharos, sys
    pharos.init(service_name="exiting", shutdown_timeout=float(sys.argv[1] if len(sys.argv) > 1
                else 5), schedule_delay=60, logs=False)
    for i in range(25):
        with pharos.span(f"unflushed {i}"):
            pass
    print("exiting without calling shutdown()")
"""


def test_exit_flushes_what_is_queued() -> None:
    with otlp_capture() as capture:
        result = _run(EXIT, capture.url)
        assert result.returncode == 0, result.stderr
        assert len(capture.spans()) == 25  # sent by the atexit hook, not by a timer (60 s)


def test_exit_does_not_hang_when_the_server_never_answers() -> None:
    with otlp_capture("hang") as capture:
        started = time.monotonic()
        result = _run(EXIT.replace("else 5", "else 1"), capture.url, timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 30  # shutdown_timeout=1 s, export timeout 10 s: the exit waited ~1 s
    assert "stopped waiting for the export" in result.stderr


OWN_PROVIDER = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import pharos

    mine = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(mine))
    trace.set_tracer_provider(provider)          # the app set up OpenTelemetry itself

    pharos.init(service_name="joined", logs=False)

    @pharos.tool
    def lookup() -> int:
        return 1

    lookup()
    assert pharos.shutdown(10)
    print("app exporter saw", [s.name for s in mine.get_finished_spans()])
"""


def test_init_joins_an_opentelemetry_setup_the_app_made_itself() -> None:
    with otlp_capture() as capture:
        result = _run(OWN_PROVIDER, capture.url)
        assert result.returncode == 0, result.stderr
        assert "app exporter saw ['execute_tool lookup']" in result.stdout
        assert [s["name"] for s in capture.spans()] == ["execute_tool lookup"]
