"""``ApiResponse``: what every call returns."""

from typing import Generic, TypeVar, cast

from attrs import frozen

from .errors import ApiError, CyberdeskError

T = TypeVar("T")


@frozen
class ApiResponse(Generic[T]):
    """Either ``data`` (on the operation's success status) or ``error``, never both.

    ``data`` is ``None`` on success of the operations without a body (every delete and ``pools.remove_machines``),
    so test ``error``, not ``data``, to tell success from failure.
    """

    data: T | None = None
    error: ApiError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The data, or raise :class:`CyberdeskError` carrying the error."""
        if self.error is not None:
            raise CyberdeskError(self.error)
        return cast(T, self.data)
