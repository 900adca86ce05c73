"""Alerts: events from the store's outbox, rendered (signed JSON or Slack) and sent by one daemon at a time."""
