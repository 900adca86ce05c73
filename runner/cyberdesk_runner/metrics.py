"""Prometheus metrics of one daemon (its own registry, so several daemons can live in one test process)."""

from __future__ import annotations

import threading
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_M = TypeVar("_M", bound=MetricWrapperBase)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_created = Counter(
            "cyberdesk_runner_runs_created", "Runs created in Cyberdesk", ["job"], registry=r
        )
        self.runs_finished = Counter(
            "cyberdesk_runner_runs_finished",
            "Attempts that reached a final status",
            ["job", "status"],
            registry=r,
        )
        self.retries = Counter(
            "cyberdesk_runner_retries", "Items scheduled for another attempt", ["job"], registry=r
        )
        self.webhooks = Counter(
            "cyberdesk_runner_webhook_deliveries", "Webhook deliveries by result", ["result"], registry=r
        )
        self.poll_requests = Counter(
            "cyberdesk_runner_poll_requests", "API requests made by polling", registry=r
        )
        self.api_errors = Counter(
            "cyberdesk_runner_api_errors",
            "API calls that failed after the SDK's retries",
            ["operation"],
            registry=r,
        )
        self.fires = Counter(
            "cyberdesk_runner_fires",
            "Fires by what became of them: started, succeeded, failed, cancelled, skipped",
            ["job", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "cyberdesk_runner_tokens",
            "Tokens used by ended runs, as their usage_metadata says",
            ["job"],
            registry=r,
        )
        self.billed_seconds = Counter(
            "cyberdesk_runner_billed_seconds",
            "Billed seconds of ended runs, as their usage_metadata says",
            ["job"],
            registry=r,
        )
        self.dispatch_lag = Histogram(
            "cyberdesk_runner_dispatch_lag_seconds",
            "From an attempt's claim to its create call's answer",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.items_pending = Gauge(
            "cyberdesk_runner_items_pending", "Items waiting for a desktop", registry=r
        )
        self.items_in_flight = Gauge("cyberdesk_runner_runs_in_flight", "Runs not yet final", registry=r)
        self.news_batches = Histogram(
            "cyberdesk_runner_news_batch_size",
            "News about runs (create answers, webhooks, polls) recorded per store transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.alerts_sent = Counter(
            "cyberdesk_runner_alerts_sent",
            "Alerts this daemon delivered (2xx from the destination)",
            registry=r,
        )
        self.alert_tries_failed = Counter(
            "cyberdesk_runner_alert_tries_failed",
            "Alert deliveries that failed and will be tried again",
            registry=r,
        )
        self.alerts = Gauge(
            "cyberdesk_runner_alerts",
            "Alerts in the store's outbox by status (pending, sent, failed: given up after 24 h, digested)",
            ["status"],
            registry=r,
        )
        self.loop_rounds = Counter(
            "cyberdesk_runner_loop_rounds", "Rounds the daemon's loops completed", ["loop"], registry=r
        )
        self.store_transactions = Histogram(
            "cyberdesk_runner_store_transaction_seconds",
            "Store transactions by the store method that ran them, BEGIN to the end of the commit",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.store_transaction_max = Gauge(
            "cyberdesk_runner_store_transaction_max_seconds",
            "The longest store transaction of each store method since the daemon started",
            ["method"],
            registry=r,
        )
        self._longest: dict[str, float] = {}
        self._longest_lock = threading.Lock()
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        self.loop_last_round = Gauge(
            "cyberdesk_runner_loop_last_round_timestamp_seconds",
            "When each loop last completed a round (a stale loop stops advancing; /healthz says 503)",
            ["loop"],
            registry=r,
        )

    def child(self, metric: _M, *labels: str) -> _M:
        """`metric.labels(*labels)`, looked up once: the loops count every run under a few label values, and
        prometheus_client takes a lock and builds the key on every lookup. Any thread may call it."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child  # type: ignore[return-value] # the child of a metric is of its type

    def store_transaction(self, method: str, seconds: float) -> None:
        """One store transaction's duration (`StoreCore.transaction_timer`); called from any thread."""
        self.child(self.store_transactions, method).observe(seconds)
        if seconds > self._longest.get(method, 0.0):
            with self._longest_lock:  # two threads' maxima: the larger one stays
                if seconds > self._longest.get(method, 0.0):
                    self._longest[method] = seconds
                    self.store_transaction_max.labels(method).set(seconds)
