"""Run status -> attempt status: webhooks (fast), polling (the safety net), and the reaper (timeouts, cancels)."""
