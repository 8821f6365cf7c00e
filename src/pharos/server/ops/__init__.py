"""Operations (issue 8): retention, backups, readiness, graceful shutdown, Redis degradation."""
