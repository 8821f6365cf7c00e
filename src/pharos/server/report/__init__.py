"""Reports (issue 9): a daily health report and a weekly performance & cost summary, computed
from the analytics, cost, alerting and SLO rooms' own functions, rendered for the terminal (Rich),
HTML (with an inline PNG chart, matplotlib's Agg backend) and Slack, and sent on a schedule
through the alerting channels (the outbox). See docs/interop.md."""
