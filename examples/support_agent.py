"""An example support agent instrumented with the Pharos SDK.

No API key is needed: the "LLM" is a fake that answers with canned text, realistic latency and
token counts, and the occasional rate-limit error. What it produces is what a real agent would:

* a trace per ticket — ``invoke_agent support-bot`` with LLM calls (``gpt-4o-mini`` to
  classify, ``gpt-4o`` to answer, streamed), tool calls (``search_kb``, ``lookup_order``,
  ``create_ticket``) and, for refunds, a nested ``billing-agent`` on ``claude-3-5-haiku``;
* errors: a slow order database (a ``TimeoutError`` the agent recovers from), rate limits
  (retried), and a few tickets that fail outright;
* JSON logs correlated with the traces, with the customer's e-mail address and a leaked API
  key redacted before they leave the process.

Run it against a Pharos server::

    python examples/support_agent.py --endpoint http://127.0.0.1:4318 --runs 20
    pharos demo --sdk --traces 20        # the same, from the CLI
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pharos

log = pharos.get_logger("support_agent")

ARTICLES = {
    "refund": "Refunds are issued to the original payment method within 5 business days.",
    "shipping": "Orders ship within 24 hours; tracking links are e-mailed at dispatch.",
    "password": "Reset your password from Settings > Security; links expire after 1 hour.",
    "invoice": "Invoices are in Billing > History and can be downloaded as PDF.",
    "api": "API keys are created in Settings > Developers and can be revoked at any time.",
}
TICKETS = [
    ("Where is my order {order}? It has not arrived.", "order"),
    ("I want a refund for order {order}, the item was damaged.", "refund"),
    ("How do I reset my password?", "howto"),
    ("Can I get last month's invoice?", "howto"),
    ("My API key sk-live-{key} stopped working, can you check?", "howto"),
    ("The package for {order} arrived broken, refund please", "refund"),
]


# --- a fake LLM with the shape of an OpenAI response ---------------------------------------------


class RateLimitError(Exception):
    """What a provider's SDK raises on HTTP 429."""


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Choice:
    text: str
    finish_reason: str = "stop"


@dataclass
class Response:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage


@dataclass
class FakeLLM:
    rng: random.Random
    speed: float = 1.0  # 0 = no sleeping (tests), 1 = realistic-ish latency
    calls: int = field(default=0)

    async def _latency(self, output_tokens: int, model: str) -> None:
        per_token = 0.0004 if "mini" in model or "haiku" in model else 0.0009
        await asyncio.sleep(
            self.speed * (0.02 + output_tokens * per_token) * self.rng.uniform(0.7, 1.6)
        )

    async def complete(self, model: str, prompt: str, max_tokens: int = 200) -> Response:
        self.calls += 1
        if self.rng.random() < 0.05:
            await asyncio.sleep(self.speed * 0.01)
            raise RateLimitError(f"Rate limit reached for {model}: retry after 1s")
        prompt_tokens = 40 + len(prompt) // 4 + self.rng.randint(0, 60)
        output_tokens = self.rng.randint(max_tokens // 8, max_tokens)
        await self._latency(output_tokens, model)
        text = f"[{model}] " + " ".join(
            self.rng.choice(["sure", "ok", "let", "me", "check"]) for _ in range(8)
        )
        return Response(
            id=f"chatcmpl-{self.rng.getrandbits(48):012x}",
            model=model,
            choices=[Choice(text)],
            usage=Usage(prompt_tokens, output_tokens),
        )

    async def stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        self.calls += 1
        for word in ("Thanks", "for", "reaching", "out.", "Here", "is", "what", "I", "found:"):
            await asyncio.sleep(self.speed * 0.004)
            yield word + " "


# --- the agent ----------------------------------------------------------------------------------


@dataclass
class Ticket:
    id: int
    customer: str
    text: str
    kind: str
    order: str


@pharos.tool
async def search_kb(query: str, top_k: int = 2) -> list[str]:
    """Search the help-center articles."""
    await asyncio.sleep(0.003)
    words = query.lower()
    hits = [text for topic, text in ARTICLES.items() if topic in words]
    return (hits or [ARTICLES["shipping"]])[:top_k]


SHOP_DB_KEY = "sk-shopdb-4f9a8b7c6d5e4f3a2b1c0d9e"  # captured as an argument, sent as [REDACTED]


@pharos.tool
def lookup_order(order_id: str, api_key: str) -> dict[str, str]:
    """Look up an order in the shop database."""
    rng = random.Random(order_id)
    time.sleep(0.002)
    if rng.random() < 0.12:
        raise TimeoutError(f"shop database did not answer for order {order_id} within 2s")
    return {"order_id": order_id, "status": rng.choice(["shipped", "delivered", "processing"])}


@pharos.tool(name="create_ticket")
def escalate(ticket_id: int, reason: str) -> str:
    """Open a ticket for a human agent."""
    return f"HUMAN-{ticket_id:05d}"


async def call_model(
    llm: FakeLLM, model: str, system: str, prompt: str, temperature: float | None = None
) -> str:
    """One model call with a retry on rate limits: each attempt is its own LLM span."""
    for attempt in range(3):
        try:
            with pharos.llm(model=model, system=system, temperature=temperature) as call:
                call.set_input([{"role": "user", "content": prompt}])
                response = await llm.complete(model, prompt)
                call.record(response=response, output=response.choices[0].text)
                return response.choices[0].text
        except RateLimitError as exc:
            log.warning("rate limited, retrying", model=model, attempt=attempt + 1, error=str(exc))
            await asyncio.sleep(llm.speed * 0.05 * (attempt + 1))
    raise RateLimitError(f"{model}: still rate limited after 3 attempts")


@pharos.llm(model="gpt-4o", system="openai")
async def draft_reply(llm: FakeLLM, prompt: str) -> AsyncIterator[str]:
    """A streamed answer: the LLM span lasts until the last chunk."""
    async for chunk in llm.stream("gpt-4o", prompt):
        yield chunk
    pharos.current_span().record(input_tokens=len(prompt) // 4 + 120, output_tokens=9)


@pharos.agent(name="billing-agent")
async def billing_agent(llm: FakeLLM, ticket: Ticket) -> str:
    log.info("refund requested", ticket_id=ticket.id, order=ticket.order)
    verdict = await call_model(
        llm, "claude-3-5-haiku", "anthropic", f"Is a refund allowed for: {ticket.text}"
    )
    if llm.rng.random() < 0.3:
        ref = escalate(ticket.id, "refund above the automatic limit")
        log.info("refund escalated to a human", ticket_id=ticket.id, escalation=ref)
        return f"escalated as {ref}"
    return f"refund approved ({verdict[:20]})"


@pharos.agent(name="support-bot")
async def handle(llm: FakeLLM, ticket: Ticket) -> str:
    log.info("ticket received", ticket_id=ticket.id, customer=ticket.customer)
    intent = await call_model(
        llm, "gpt-4o-mini", "openai", f"Classify: {ticket.text}", temperature=0.0
    )
    docs = await search_kb(ticket.text)
    notes = ""
    if ticket.kind in ("order", "refund"):
        try:
            order = lookup_order(ticket.order, api_key=SHOP_DB_KEY)
            notes = f"order {order['order_id']} is {order['status']}"
        except TimeoutError:
            log.warning("order lookup timed out; answering without it", ticket_id=ticket.id)
    if ticket.kind == "refund":
        notes += "; " + await billing_agent(llm, ticket)
    if "sk-live" in ticket.text:
        log.info(
            "customer pasted a key",
            ticket_id=ticket.id,
            note=f"header was Authorization: Bearer {ticket.text.split('sk-live-')[1][:24]}",
        )
    if llm.rng.random() < 0.04:
        raise ValueError(f"reply for ticket {ticket.id} failed the policy check ({intent[:16]})")
    reply = "".join([chunk async for chunk in draft_reply(llm, f"{ticket.text}\n{docs}\n{notes}")])
    log.info("ticket answered", ticket_id=ticket.id, words=len(reply.split()))
    return reply


def make_tickets(runs: int, rng: random.Random) -> list[Ticket]:
    tickets = []
    for i in range(runs):
        template, kind = TICKETS[i % len(TICKETS)] if i < len(TICKETS) else rng.choice(TICKETS)
        order = f"A{rng.randint(10000, 99999)}"
        key = f"{rng.getrandbits(96):024x}"
        tickets.append(
            Ticket(
                id=1000 + i,
                customer=f"customer{rng.randint(1, 500)}@example.com",
                text=template.format(order=order, key=key),
                kind=kind,
                order=order,
            )
        )
    return tickets


async def run_all(runs: int, seed: int, concurrency: int, speed: float) -> tuple[int, int]:
    rng = random.Random(seed)
    llm = FakeLLM(rng, speed)
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(ticket: Ticket) -> None:
        nonlocal failed
        async with gate:
            with pharos.bind(channel="email"):
                try:
                    await handle(llm, ticket)
                except Exception:
                    failed += 1
                    log.exception("ticket failed", ticket_id=ticket.id)

    await asyncio.gather(*(one(t) for t in make_tickets(runs, rng)))
    return runs, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--endpoint",
        default=None,
        help="Pharos URL (default: PHAROS_ENDPOINT or http://127.0.0.1:4318)",
    )
    parser.add_argument("--api-key", default=None, help="Pharos API key (or PHAROS_API_KEY)")
    parser.add_argument("--runs", type=int, default=20, help="tickets to handle")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--speed", type=float, default=1.0, help="latency factor (0 = no waits)")
    args = parser.parse_args(argv)

    pharos.init(
        service_name="support-bot",
        endpoint=args.endpoint,
        api_key=args.api_key,
        environment="demo",
        capture_content=True,
        redact_pii=True,
    )
    runs, failed = asyncio.run(run_all(args.runs, args.seed, args.concurrency, args.speed))
    flushed = pharos.shutdown()
    counts = pharos.stats().get("spans", {})
    print(
        f"handled {runs} tickets ({failed} failed); spans sent {counts.get('exported', 0)}, "
        f"not sent {counts.get('failed', 0) + counts.get('dropped', 0)}",
        file=sys.stderr,
    )
    return 0 if flushed and counts.get("failed", 0) == 0 and counts.get("dropped", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
