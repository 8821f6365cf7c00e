"""Notification channels: Slack, PagerDuty, generic webhook, e-mail (payload builders + senders)."""
