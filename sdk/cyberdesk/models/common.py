"""Shapes shared by several resources: pages, included resources, validation errors, file inputs."""

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from uuid import UUID

from attrs import define, field

from .._types import UNSET, Unset
from ._base import JSONObject, Model, _list, dump_fields, load, to_opt_uuid

T = TypeVar("T")


@define(kw_only=True)
class IncludedResource(Model):
    """An item of ``included`` (JSON:API-like): ``type`` and ``id``; the resource's other fields are in
    ``additional_properties``."""

    type: str
    id: UUID


@define(kw_only=True)
class Page(Generic[T]):
    """One page of a list endpoint. ``items``, ``total``, ``skip`` and ``limit`` are required keys."""

    items: list[T]
    total: int
    skip: int
    limit: int
    #: Related resources, on the with-includes lists (machines, pools, workflows, runs, trajectories).
    included: list[IncludedResource] | None = None
    additional_properties: JSONObject = field(factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], item: Callable[[Any], T]) -> "Page[T]":
        """Parse a page whose items are parsed by ``item`` (e.g. ``RunResponse.from_dict``)."""
        page: Page[T] = load(cls, data, {"items": _list(item)})
        return page

    def to_dict(self) -> JSONObject:
        """The page's JSON object; ``included`` only when set (the connections page has no such key)."""
        data = dump_fields(self)
        if data["included"] is None:
            del data["included"]
        return data


@define(kw_only=True)
class ValidationError(Model):
    """One item of FastAPI's 422 ``detail`` list."""

    loc: list[int | str]
    msg: str
    type: str
    input: Any = UNSET
    ctx: JSONObject | Unset = UNSET

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.loc)
        return f"{where}: {self.msg} ({self.type})" if where else f"{self.msg} ({self.type})"


@define(kw_only=True)
class HTTPValidationError(Model):
    """FastAPI's 422 body."""

    detail: list[ValidationError] = field(factory=list)


@define(kw_only=True)
class DisplayDimensions(Model):
    width: int
    height: int


@define(kw_only=True)
class FileInput(Model):
    """A file pushed to the machine before a run (``content`` is base64)."""

    filename: str
    content: str
    target_path: str | None | Unset = UNSET
    cleanup_imports_after_run: bool = False


@define(kw_only=True)
class WorkflowModelMetadata(Model):
    """Model choices of a workflow or run; a null id means the Cyberdesk default."""

    main_agent_model_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    cache_detection_model_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    fallback_model_1_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
    fallback_model_2_id: UUID | None | Unset = field(default=UNSET, converter=to_opt_uuid)
