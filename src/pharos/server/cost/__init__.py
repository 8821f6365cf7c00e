"""Cost: model prices, pricing at ingest, budgets and forecasts, savings suggestions."""
