"""Workflow tags and tag groups, and which tags each workflow carries.

The documented rules: a tag's (and a group's) name is unique in the organisation; a workflow carries at most one
tag of a group (adding a tag of a group replaces the workflow's other tag of that group); an archived tag stays
on its workflows but cannot be added to others; deleting a tag takes it off every workflow; deleting a group
leaves its tags ungrouped. Emulator choices: a duplicate name is a 409, adding an archived tag a 400, and tags
given together apply in order (the last of a group wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cyberdesk.emulator.errors import Conflict, EmulatorError, NotFound
from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.records import Tag, TagGroup, Workflow


class Tags:
    def __init__(self, ids: IdFactory, workflows: Mapping[str, Workflow]) -> None:
        self.ids = ids
        self.workflows = workflows
        self.tags: dict[str, Tag] = {}
        self.groups: dict[str, TagGroup] = {}

    # -- groups -------------------------------------------------------------------------------

    def group(self, group_id: str) -> TagGroup:
        found = self.groups.get(group_id)
        if found is None:
            raise NotFound("Tag group not found")
        return found

    def list_groups(self) -> list[TagGroup]:
        return sorted(self.groups.values(), key=lambda g: (g.order, g.created_at))

    def create_group(self, name: str, fields: Mapping[str, Any], now: float) -> TagGroup:
        self._check_name(self.groups.values(), name, "tag group")
        order = 1 + max((g.order for g in self.groups.values()), default=-1)
        group = TagGroup(self.ids.uuid(), name, order, now, now, **fields)
        self.groups[group.id] = group
        return group

    def update_group(self, group: TagGroup, changes: Mapping[str, Any], now: float) -> TagGroup:
        if changes.get("name") is not None and changes["name"] != group.name:
            self._check_name(self.groups.values(), changes["name"], "tag group")
        for attr, value in changes.items():
            if attr != "name" or value is not None:
                setattr(group, attr, value)
        group.updated_at = now
        return group

    def delete_group(self, group_id: str, now: float) -> None:
        self.group(group_id)
        for tag in self.tags.values():
            if tag.group_id == group_id:
                tag.group_id, tag.updated_at = None, now
        del self.groups[group_id]

    def reorder_groups(self, group_ids: Sequence[str], now: float) -> None:
        _reorder([self.group(g) for g in group_ids], self.list_groups(), now)

    # -- tags ---------------------------------------------------------------------------------

    def tag(self, tag_id: str) -> Tag:
        found = self.tags.get(tag_id)
        if found is None:
            raise NotFound("Tag not found")
        return found

    def list_tags(self, include_archived: bool) -> list[Tag]:
        return [t for t in self._ordered(self.tags.values()) if include_archived or not t.is_archived]

    def create_tag(self, name: str, group_id: str | None, fields: Mapping[str, Any], now: float) -> Tag:
        self._check_name(self.tags.values(), name, "tag")
        if group_id is not None:
            self.group(group_id)
        order = 1 + max((t.order for t in self.tags.values()), default=-1)
        tag = Tag(self.ids.uuid(), name, order, now, now, group_id=group_id, **fields)
        self.tags[tag.id] = tag
        return tag

    def update_tag(self, tag: Tag, changes: Mapping[str, Any], now: float) -> Tag:
        if changes.get("name") is not None and changes["name"] != tag.name:
            self._check_name(self.tags.values(), changes["name"], "tag")
        if changes.get("group_id") is not None:
            self.group(changes["group_id"])
        for attr, value in changes.items():
            if value is not None or attr in ("group_id", "description", "emoji", "color"):
                setattr(tag, attr, value)
        tag.updated_at = now
        return tag

    def set_archived(self, tag: Tag, archived: bool, now: float) -> Tag:
        tag.is_archived, tag.updated_at = archived, now
        return tag

    def delete_tag(self, tag_id: str) -> None:
        self.tag(tag_id)
        for workflow in self.workflows.values():
            if tag_id in workflow.tag_ids:
                workflow.tag_ids.remove(tag_id)
        del self.tags[tag_id]

    def reorder_tags(self, tag_ids: Sequence[str], now: float) -> None:
        _reorder([self.tag(t) for t in tag_ids], self._ordered(self.tags.values()), now)

    def workflow_count(self, tag: Tag) -> int:
        return sum(tag.id in w.tag_ids for w in self.workflows.values())

    # -- tags on workflows --------------------------------------------------------------------

    def of(self, workflow: Workflow) -> list[Tag]:
        return self._ordered(self.tags[t] for t in workflow.tag_ids if t in self.tags)

    def add(self, workflows: Iterable[Workflow], tag_ids: Sequence[str]) -> None:
        """Adds the tags to each workflow, all or nothing: a tag of a group replaces that group's tag."""
        tags = [self.tag(t) for t in tag_ids]
        archived = [t.name for t in tags if t.is_archived]
        if archived:
            raise EmulatorError(f"Archived tags cannot be added to workflows: {', '.join(archived)}")
        for workflow in workflows:
            for tag in tags:
                if tag.id in workflow.tag_ids:
                    continue
                if tag.group_id is not None:
                    workflow.tag_ids = [t for t in workflow.tag_ids if self.tags[t].group_id != tag.group_id]
                workflow.tag_ids.append(tag.id)

    def remove(self, workflow: Workflow, tag_id: str) -> None:
        self.tag(tag_id)
        if tag_id not in workflow.tag_ids:
            raise NotFound("Tag is not on this workflow")
        workflow.tag_ids.remove(tag_id)

    def has_all(self, workflow: Workflow, tag_ids: Iterable[str]) -> bool:
        return all(t in workflow.tag_ids for t in tag_ids)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _ordered(tags: Iterable[Tag]) -> list[Tag]:
        return sorted(tags, key=lambda t: (t.order, t.created_at))

    @staticmethod
    def _check_name(existing: Iterable[Tag | TagGroup], name: str, what: str) -> None:
        if any(item.name == name for item in existing):
            raise Conflict(f"A {what} named {name!r} already exists")


def _reorder(given: Sequence[Tag | TagGroup], current: Sequence[Tag | TagGroup], now: float) -> None:
    """The given ones first, in that order; the others keep their relative order after them."""
    named = {item.id for item in given}
    for order, item in enumerate([*given, *(i for i in current if i.id not in named)]):
        if item.order != order:
            item.order, item.updated_at = order, now
