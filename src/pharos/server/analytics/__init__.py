"""Analytics: rollups, histograms, summaries, time series, trends, health, bottlenecks."""
