"""Alerting: rule language, state machine, engine, silences, notifiers, outbox (issue 5)."""
