"""Workflow tags and tag groups, workflows.merge, prompt images, model configurations and run screenshots in the
emulator, driven through our SDK over the in-process app (the official client drives them too, in
test_official_client.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest

from cyberdesk import CyberdeskClient, ModelConfigurationCreate, ModelConfigurationUpdate, RunCreate
from cyberdesk.emulator import Emulator, create_app
from cyberdesk.emulator.png import screenshot_png
from cyberdesk.emulator.records import Trajectory

from .conftest import CLAIM_INPUTS, wf

PNG = screenshot_png(4, 4)


@pytest.fixture
async def sdk(em: Emulator) -> AsyncIterator[CyberdeskClient]:
    transport = httpx.ASGITransport(app=create_app(em))
    client = CyberdeskClient(em.api_key, base_url="http://emulator", async_transport=transport)
    yield client
    await client.aclose()


def status(response: object) -> int | None:
    error = getattr(response, "error", None)
    return None if error is None else error.status_code


# -- tags ---------------------------------------------------------------------------------------


async def test_a_tag_of_a_group_replaces_the_workflows_tag_of_that_group(
    em: Emulator, sdk: CyberdeskClient
) -> None:
    tags = sdk.workflow_tags
    priority = (await sdk.workflow_tag_groups.create("Priority", emoji="!")).unwrap()
    high = (await tags.create("High", group_id=priority.id)).unwrap()
    low = (await tags.create("Low", group_id=priority.id)).unwrap()
    prod = (await tags.create("Production", color="green")).unwrap()
    workflow = wf(em)

    on = (await tags.add_to_workflow(workflow, [high.id, prod.id])).unwrap()
    assert {t.name for t in on} == {"High", "Production"}
    on = (await tags.add_to_workflow(workflow, [low.id])).unwrap()
    assert {t.name for t in on} == {"Low", "Production"}, "Low must replace High (same group)"
    [grouped] = [t for t in on if t.name == "Low"]
    assert grouped.group is not None and grouped.group.name == "Priority"
    assert {t.name for t in (await tags.get_for_workflow(workflow)).unwrap()} == {"Low", "Production"}

    # The workflow carries them; the tag filter is AND.
    got = (await sdk.workflows.get(workflow)).unwrap()
    assert {t.name for t in got.tags or []} == {"Low", "Production"}
    both = (await sdk.workflows.list(tag_ids=[low.id, prod.id])).unwrap()
    assert [str(w.id) for w in both.items] == [workflow]
    assert (await sdk.workflows.list(tag_ids=[high.id, prod.id])).unwrap().items == []

    counts = {t.name: t.workflow_count for t in (await tags.list()).unwrap()}
    assert counts == {"High": 0, "Low": 1, "Production": 1}
    assert (await tags.remove_from_workflow(workflow, prod.id)).error is None
    assert status(await tags.remove_from_workflow(workflow, prod.id)) == 404


async def test_bulk_add_applies_the_group_rule_on_each_workflow_and_is_all_or_nothing(
    em: Emulator, sdk: CyberdeskClient
) -> None:
    tags = sdk.workflow_tags
    stage = (await sdk.workflow_tag_groups.create("Stage")).unwrap()
    draft = (await tags.create("Draft", group_id=stage.id)).unwrap()
    live = (await tags.create("Live", group_id=stage.id)).unwrap()
    first, second = wf(em), wf(em, "Update patient record")
    (await tags.add_to_workflow(first, [draft.id])).unwrap()

    assert (await tags.bulk_add_to_workflows([first, second], [live.id])).error is None
    for workflow in (first, second):
        assert [t.name for t in (await tags.get_for_workflow(workflow)).unwrap()] == ["Live"]
    missing = await tags.bulk_add_to_workflows([first, str(UUID(int=5))], [draft.id])
    assert status(missing) == 404
    assert [t.name for t in (await tags.get_for_workflow(first)).unwrap()] == ["Live"]


async def test_archived_tags_stay_on_workflows_but_cannot_be_added(
    em: Emulator, sdk: CyberdeskClient
) -> None:
    tags = sdk.workflow_tags
    old = (await tags.create("Legacy")).unwrap()
    first, second = wf(em), wf(em, "Update patient record")
    (await tags.add_to_workflow(first, [old.id])).unwrap()
    assert (await tags.archive(old.id)).unwrap().is_archived is True

    assert status(await tags.add_to_workflow(second, [old.id])) == 400
    assert [t.name for t in (await tags.get_for_workflow(first)).unwrap()] == ["Legacy"]
    assert [t.name for t in (await tags.list()).unwrap()] == []
    assert [t.name for t in (await tags.list(include_archived=True)).unwrap()] == ["Legacy"]
    assert (await tags.unarchive(old.id)).unwrap().is_archived is False
    assert (await tags.add_to_workflow(second, [old.id])).error is None


async def test_names_are_unique_and_deleting_ungroups_or_untags(em: Emulator, sdk: CyberdeskClient) -> None:
    tags, groups = sdk.workflow_tags, sdk.workflow_tag_groups
    group = (await groups.create("Team")).unwrap()
    tag = (await tags.create("Claims", group_id=group.id)).unwrap()
    assert status(await tags.create("Claims")) == 409
    assert status(await groups.create("Team")) == 409
    assert status(await tags.create("Orphan", group_id=str(UUID(int=9)))) == 404
    (await tags.add_to_workflow(wf(em), [tag.id])).unwrap()

    assert (await groups.delete(group.id)).error is None
    assert (await tags.get(tag.id)).unwrap().group_id is None
    renamed = (await tags.update(tag.id, name="Claims team", emoji="C")).unwrap()
    assert (renamed.name, renamed.emoji) == ("Claims team", "C")
    assert (await tags.delete(tag.id)).error is None
    assert (await tags.get_for_workflow(wf(em))).unwrap() == []
    assert status(await tags.get(tag.id)) == 404


async def test_reorder_puts_the_given_ones_first_in_order(sdk: CyberdeskClient) -> None:
    tags, groups = sdk.workflow_tags, sdk.workflow_tag_groups
    a, b, c = [(await tags.create(n)).unwrap() for n in "abc"]
    assert (await tags.reorder([c.id, a.id])).error is None
    assert [t.name for t in (await tags.list()).unwrap()] == ["c", "a", "b"]
    x, y = [(await groups.create(n)).unwrap() for n in "xy"]
    assert (await groups.reorder([y.id, x.id])).error is None
    assert [(g.name, g.order) for g in (await groups.list()).unwrap()] == [("y", 0), ("x", 1)]
    assert status(await tags.reorder([str(UUID(int=3))])) == 404


# -- merge --------------------------------------------------------------------------------------


async def test_merge_updates_the_target_and_deletes_the_source(em: Emulator, sdk: CyberdeskClient) -> None:
    source = em.add_workflow("Source", "New prompt {x}", includes_file_exports=True)
    target = em.add_workflow("Target", "Old prompt")
    now = em.now()
    em.world.trajectories["t1"] = Trajectory(
        "t1", source.id, [{"step": 1}], {"width": 1, "height": 1}, now, now
    )
    run = (await sdk.runs.create(RunCreate(workflow_id=source.id))).unwrap()

    merged = (
        await sdk.workflows.merge(source.id, target_workflow_id=target.id, copy_trajectories=True)
    ).unwrap()
    assert (str(merged.id), merged.name, merged.main_prompt) == (target.id, "Target", "New prompt {x}")
    assert merged.includes_file_exports is True
    assert status(await sdk.workflows.get(source.id)) == 404
    assert status(await sdk.runs.get(run.id)) == 404
    assert [v["main_prompt"] for v in em.workflow(target.id).old_versions] == ["Old prompt"]
    [copied] = [t for t in em.world.trajectories.values() if t.workflow_id == target.id]
    assert copied.trajectory_data == [{"step": 1}]
    assert status(await sdk.workflows.merge(target.id, target_workflow_id=target.id)) == 400
    assert status(await sdk.workflows.merge(target.id, target_workflow_id=str(UUID(int=1)))) == 404


# -- prompt images ------------------------------------------------------------------------------


async def test_prompt_images_upload_list_sign_serve_and_delete(em: Emulator, sdk: CyberdeskClient) -> None:
    images = sdk.workflows
    uploaded = (await images.upload_prompt_image(file_content=PNG, filename="logo.png")).unwrap()
    assert (uploaded.filename, uploaded.content_type, uploaded.size_bytes) == (
        "logo.png",
        "image/png",
        len(PNG),
    )
    assert uploaded.supabase_url.startswith("supabase://workflow-prompt-images/")
    [listed] = (await images.list_prompt_images()).unwrap()
    assert listed.supabase_url == uploaded.supabase_url and listed.size_bytes == len(PNG)

    signed = (await images.get_prompt_image_signed_url(listed.path)).unwrap()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(em))) as anonymous:
        # A signed URL needs no API key; a tampered one is refused; it expires.
        served = await anonymous.get(signed.signed_url)
        assert (served.status_code, served.content) == (200, PNG)
        assert (
            await anonymous.get(signed.signed_url.replace("signature=", "signature=0"))
        ).status_code == 403
        em.advance(signed.expires_in + 1)
        assert (await anonymous.get(signed.signed_url)).status_code == 403

    assert (await images.delete_prompt_image(listed.path)).error is None
    assert (await images.list_prompt_images()).unwrap() == []
    assert status(await images.get_prompt_image_signed_url(listed.path)) == 404


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"%PDF-1.4 not an image", 415),
        (b"GIF89a" + b"\0" * 16, 201),
        (b"RIFF\0\0\0\0WEBPVP8 ", 201),
        (b"\xff\xd8\xff\xe0" + b"\0" * 16, 201),
    ],
)
async def test_prompt_images_must_be_png_jpeg_gif_or_webp(
    sdk: CyberdeskClient, content: bytes, expected: int
) -> None:
    # The declared type is not trusted: the bytes decide.
    response = await sdk.workflows.upload_prompt_image(
        file_content=content, filename="x.png", content_type="image/png"
    )
    assert (status(response) or 201) == expected


async def test_a_prompt_image_over_the_limit_is_refused(
    sdk: CyberdeskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cyberdesk.emulator.storage.MAX_PROMPT_IMAGE_BYTES", 16)
    monkeypatch.setattr("cyberdesk.emulator.routes.prompt_images.MAX_PROMPT_IMAGE_BYTES", 16)
    response = await sdk.workflows.upload_prompt_image(file_content=PNG, filename="big.png")
    assert status(response) == 413


# -- model configurations -----------------------------------------------------------------------


async def test_model_configurations_crud_keeps_the_key_secret_and_system_defaults_fixed(
    em: Emulator, sdk: CyberdeskClient
) -> None:
    configs = sdk.model_configurations
    defaults = (await configs.list()).unwrap()
    assert defaults and all(c.is_system_default for c in defaults)
    created = (
        await configs.create(
            ModelConfigurationCreate(
                name="Fast",
                provider="anthropic",
                model="claude-haiku",
                temperature=0.2,
                api_key="sk-secret-1",
            )
        )
    ).unwrap()
    assert created.api_key_alias and created.temperature == 0.2 and not created.is_system_default
    assert "sk-secret-1" not in str((await configs.get(created.id)).unwrap())
    updated = (
        await configs.update(created.id, ModelConfigurationUpdate(max_tokens=512, clear_api_key=True))
    ).unwrap()
    assert (updated.max_tokens, updated.temperature, updated.api_key_alias) == (512, 0.2, None)
    assert "sk-secret-1" not in em.world.vault.values()
    assert [c.name for c in (await configs.list()).unwrap()][-1] == "Fast"

    assert status(await configs.update(defaults[0].id, ModelConfigurationUpdate(name="x"))) == 403
    assert status(await configs.delete(defaults[0].id)) == 403
    assert (await configs.delete(created.id)).error is None
    assert status(await configs.get(created.id)) == 404


# -- run screenshots and trajectories -----------------------------------------------------------


async def test_a_runs_screenshot_has_a_signed_url_and_its_trajectory_can_be_generated(
    em: Emulator, sdk: CyberdeskClient
) -> None:
    run = (await sdk.runs.create(RunCreate(workflow_id=wf(em), input_values=CLAIM_INPUTS))).unwrap()
    em.run_until_idle()
    done = (await sdk.runs.get(run.id)).unwrap()
    image_url = next(
        block["image_url"]
        for message in done.run_message_history or []
        for block in message["content"]
        if block["type"] == "image"
    )
    signed = (await sdk.runs.get_image_signed_url(run.id, image_url=image_url, expires_in=60)).unwrap()
    assert (signed.supabase_url, signed.expires_in) == (image_url, 60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(em))) as anonymous:
        served = await anonymous.get(signed.signed_url)
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    other = image_url.replace("step-1", "step-9")
    assert status(await sdk.runs.get_image_signed_url(run.id, image_url=other)) == 404
    assert status(await sdk.runs.get_image_signed_url(run.id, image_url=image_url, expires_in=5)) == 422

    assert status(await sdk.runs.generate_trajectory(run.id)) == 404
    now = em.now()
    trajectory_id = str(UUID(int=77))
    em.world.trajectories[trajectory_id] = Trajectory(
        trajectory_id, wf(em), [{"a": 1}], {"width": 1, "height": 1}, now, now, run_id=str(run.id)
    )
    generated = (await sdk.runs.generate_trajectory(run.id)).unwrap()
    assert generated.is_generated is True and str(generated.id) == trajectory_id
