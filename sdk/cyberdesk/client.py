"""``CyberdeskClient``: the entry point of the SDK."""

import copy
from types import TracebackType
from typing import Self

import httpx

from ._core import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, Core, RetryConfig
from .resources import (
    Computer,
    Connections,
    Health,
    Machines,
    ModelConfigurations,
    Pools,
    RunAttachments,
    Runs,
    Trajectories,
    Usage,
    Workflows,
    WorkflowTagGroups,
    WorkflowTags,
)


class CyberdeskClient:
    """A client of the Cyberdesk API.

    Every operation exists as ``await client.<resource>.<name>(...)`` and ``client.<resource>.<name>_sync(...)``,
    and returns an :class:`~cyberdesk.ApiResponse`; HTTP errors, timeouts and network failures come back in its
    ``error``, never as exceptions. Every write accepts ``idempotency_key=...``; without one the client sends a
    fresh key per call (reused on that call's retries) unless ``idempotency_enabled=False``.

    Connection pools are created on first use, one sync and one async (aiohttp-backed unless ``async_transport``
    is given, and then bound to the event loop of its first call). Close with ``close()`` / ``with`` after sync
    use, and with ``await aclose()`` / ``async with`` after async use (``aclose`` releases both pools).

    ``transport`` / ``async_transport`` replace the network (e.g. ``httpx.MockTransport`` or an in-process app).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryConfig | None = None,
        *,
        idempotency_enabled: bool = True,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("CyberdeskClient: api_key must be a non-empty string")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(
                f"CyberdeskClient: base_url must start with https:// or http://, got {base_url!r}"
            )
        if max_connections < 1:
            raise ValueError(f"CyberdeskClient: max_connections must be >= 1, got {max_connections!r}")
        self.base_url = base_url.rstrip("/")
        self._core = Core(
            api_key=api_key,
            base_url=self.base_url,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            retry=retry if retry is not None else RetryConfig(),
            idempotency_enabled=idempotency_enabled,
            max_connections=max_connections,
            transport=transport,
            async_transport=async_transport,
        )
        self._bind()

    def _bind(self) -> None:
        self.machines = Machines(self._core)
        self.pools = Pools(self._core)
        self.workflows = Workflows(self._core)
        self.workflow_tags = WorkflowTags(self._core)
        self.workflow_tag_groups = WorkflowTagGroups(self._core)
        self.runs = Runs(self._core)
        self.connections = Connections(self._core)
        self.trajectories = Trajectories(self._core)
        self.run_attachments = RunAttachments(self._core)
        self.model_configurations = ModelConfigurations(self._core)
        self.usage = Usage(self._core)
        self.computer = Computer(self._core)
        self.health = Health(self._core)

    def with_retry(self, retry: RetryConfig) -> Self:
        """This client with another retry policy, e.g. ``RetryConfig(max_retries=0)`` for a call that must not be
        repeated later on its own. It shares this client's connection pools: close this client, not that one."""
        twin = copy.copy(self)
        twin._core = self._core.with_retry(retry)
        twin._bind()
        return twin

    def __repr__(self) -> str:
        return f"CyberdeskClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Release the sync connection pool. A client used with async methods needs :meth:`aclose`."""
        self._core.close()

    async def aclose(self) -> None:
        """Release both connection pools."""
        await self._core.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
