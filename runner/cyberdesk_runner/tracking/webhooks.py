"""The webhook endpoint: verify the Svix signature, then record the run's news. Forged deliveries change nothing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cyberdesk import RunCompletedEvent
from cyberdesk.webhooks import WebhookVerificationError, verify
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.metrics import Metrics
from cyberdesk_runner.tracking.news import observation
from cyberdesk_runner.tracking.sink import ObservationSink

log = get_logger(__name__)


class WebhookReceiver:
    def __init__(self, *, secret: str, sink: ObservationSink, metrics: Metrics) -> None:
        self._secret = secret
        self._sink = sink
        self._metrics = metrics

    async def handle(self, request: Request) -> Response:
        payload = await request.body()
        try:
            event = verify(payload, request.headers, self._secret)
        except WebhookVerificationError as exc:
            self._metrics.webhooks.labels("rejected").inc()
            log.warning(
                "webhook_rejected", reason=str(exc), remote=request.client.host if request.client else None
            )
            return JSONResponse({"detail": "invalid webhook"}, status_code=400)
        if isinstance(event, RunCompletedEvent):
            await self._sink.record([observation(event.run, "webhook")])
        self._metrics.webhooks.labels("accepted").inc()
        return JSONResponse({"ok": True})
