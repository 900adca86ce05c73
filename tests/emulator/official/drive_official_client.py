"""Drive the official `cyberdesk` 2.2.69 client against a served emulator (base_url + api_key only).

Run by tests/emulator/test_official_client.py in a subprocess whose sys.path starts with the official wheel, so
`import cyberdesk` there is the official package, not ours. Not a test module itself (no test_ prefix).
"""

# ruff: noqa
import sys
import time
from uuid import UUID
from cyberdesk import (
    CyberdeskClient,
    RunCreate,
    RunUpdate,
    RunStatus,
    MachineCreate,
    MachineUpdate,
    WorkflowCreate,
    WorkflowUpdate,
    ConnectionCreate,
    TrajectoryCreate,
    TrajectoryUpdate,
    RunField,
    RunListSortMode,
    ModelConfigurationCreate,
    ModelConfigurationUpdate,
)
from openapi_client.cyberdesk_cloud_client import models as m

base_url, api_key = sys.argv[1], sys.argv[2]
c = CyberdeskClient(api_key, base_url=base_url)
results = []


def check(name, resp, expect=None):
    ok = resp.error is None and (expect is None or isinstance(resp.data, expect))
    results.append((name, ok, type(resp.data).__name__, repr(resp.error)[:200]))
    return resp.data


wfs = check("workflows.list", c.workflows.list_sync())
wf = next(w for w in wfs.items if w.name == "Submit insurance claim")
check("workflows.get", c.workflows.get_sync(wf.id))
new_wf = check(
    "workflows.create", c.workflows.create_sync(WorkflowCreate(main_prompt="Say {x}", name="official"))
)
check("workflows.update", c.workflows.update_sync(new_wf.id, WorkflowUpdate(name="official2")))
check("workflows.duplicate", c.workflows.duplicate_sync(new_wf.id))
machines = check("machines.list", c.machines.list_sync())
desk = machines.items[0]
check(
    "machines.list(status,include)", c.machines.list_sync(status=m.MachineStatus.CONNECTED, include=["pools"])
)
check("machines.get", c.machines.get_sync(desk.id, include=["pools"]))
nm = check(
    "machines.create",
    c.machines.create_sync(
        MachineCreate(
            fingerprint="fp",
            unkey_key_id="k",
            name="official-desk",
            machine_sensitive_parameters={"password": "s3cr3t"},
        )
    ),
)
check("machines.update", c.machines.update_sync(nm.id, MachineUpdate(name="renamed")))
check("machines.get_pools", c.machines.get_pools_sync(desk.id))
pools = check("pools.list", c.pools.list_sync())
check("pools.get", c.pools.get_sync(pools.items[0].id))
np = check("pools.create", c.pools.create_sync(m.PoolCreate(name="official-pool")))
check("pools.update", c.pools.update_sync(np.id, m.PoolUpdate(description="d")))
check("pools.add_machines", c.pools.add_machines_sync(np.id, m.MachinePoolAssignment(machine_ids=[nm.id])))
check("machines.update_pools", c.machines.update_pools_sync(nm.id, m.MachinePoolUpdate(pool_ids=[np.id])))
check(
    "pools.remove_machines", c.pools.remove_machines_sync(np.id, m.MachinePoolAssignment(machine_ids=[nm.id]))
)
run = check(
    "runs.create",
    c.runs.create_sync(
        RunCreate(workflow_id=wf.id, input_values={"claim_id": "C-1", "patient_name": "Ann", "amount": "1"})
    ),
)
check("runs.get", c.runs.get_sync(run.id, include=["machine"]))
check("runs.list", c.runs.list_sync())
check(
    "runs.list(filters)",
    c.runs.list_sync(
        status=RunStatus.SCHEDULING,
        workflow_id=wf.id,
        sort_mode=RunListSortMode.CREATED_AT_DESC,
        fields=[RunField.OUTPUT_DATA],
        include=["workflow"],
    ),
)
for _ in range(200):
    r = c.runs.get_sync(run.id).data
    if r.status == RunStatus.SUCCESS:
        break
    time.sleep(0.02)
results.append(("run reached success", r.status == RunStatus.SUCCESS, str(r.status), ""))
results.append(("output_data resolved", "s3cr3t" not in str(r.output_data), "", str(r.output_data)[-300:]))
check("runs.retry", c.runs.retry_sync(run.id, m.RunRetry()))
check("runs.update(cancel)", c.runs.update_sync(run.id, RunUpdate(status=RunStatus.CANCELLED)))
check("runs.bulk_create", c.runs.bulk_create_sync(m.RunBulkCreate(workflow_id=wf.id, count=3)))
check(
    "runs.chain",
    c.runs.chain_sync(
        m.WorkflowChainCreate(steps=[m.ChainStep(workflow_id=wf.id), m.ChainStep(workflow_id=wf.id)])
    ),
)
sess = check(
    "runs.create(start_session)",
    c.runs.create_sync(RunCreate(workflow_id=wf.id, machine_id=desk.id, start_session=True)),
)
time.sleep(0.05)
check("machines.clear_session", c.machines.clear_session_sync(desk.id))
traj = check(
    "trajectories.create",
    c.trajectories.create_sync(
        TrajectoryCreate.from_dict(
            {
                "workflow_id": str(wf.id),
                "trajectory_data": [{"a": 1}],
                "dimensions": {"width": 1, "height": 1},
                "run_id": str(run.id),
            }
        )
    ),
)
check("trajectories.get", c.trajectories.get_sync(traj.id))
check("trajectories.update", c.trajectories.update_sync(traj.id, TrajectoryUpdate(is_approved=True)))
check("trajectories.list", c.trajectories.list_sync(is_generated=None))
check("trajectories.duplicate", c.trajectories.duplicate_sync(traj.id))
check("trajectories.get_latest_for_workflow", c.trajectories.get_latest_for_workflow_sync(wf.id))
check("runs.get_trajectory", c.runs.get_trajectory_sync(run.id))
check("connections.list", c.connections.list_sync())
check(
    "connections.create", c.connections.create_sync(ConnectionCreate(websocket_id="ws", machine_id=desk.id))
)
# Files in and out, and usage.
import base64, datetime, os, tempfile

exp_wf = check(
    "workflows.create(exports)",
    c.workflows.create_sync(
        WorkflowCreate(main_prompt="Export {claim_id}", name="exports", includes_file_exports=True)
    ),
)
frun = check(
    "runs.create(file_inputs)",
    c.runs.create_sync(
        RunCreate(
            workflow_id=exp_wf.id,
            input_values={"claim_id": "C-7"},
            file_inputs=[m.FileInput(filename="claim.pdf", content=base64.b64encode(b"%PDF-1").decode())],
        )
    ),
)
for _ in range(200):
    fr = c.runs.get_sync(frun.id).data
    if fr.status in (RunStatus.SUCCESS, RunStatus.TASK_FAILED, RunStatus.ERROR):
        break
    time.sleep(0.02)
atts = check("run_attachments.list", c.run_attachments.list_sync(run_id=str(frun.id)))
inputs = [a for a in atts.items if a.attachment_type == m.AttachmentType.INPUT]
results.append(
    ("input attachment from file_inputs", len(inputs) == 1, "", str([a.filename for a in atts.items]))
)
check("run_attachments.get", c.run_attachments.get_sync(str(inputs[0].id)))
got = check("run_attachments.download", c.run_attachments.download_sync(str(inputs[0].id)))
results.append(("download bytes", got == b"%PDF-1", type(got).__name__, ""))
check(
    "run_attachments.get_download_url",
    c.run_attachments.get_download_url_sync(str(inputs[0].id), expires_in=60),
)
with tempfile.TemporaryDirectory() as folder:
    saved = check(
        "run_attachments.save_to_file", c.run_attachments.save_to_file_sync(str(inputs[0].id), folder)
    )
    results.append(("saved file", os.path.getsize(saved["path"]) == 6, "", str(saved)))
if fr.status == RunStatus.SUCCESS:
    outs = [a for a in atts.items if a.attachment_type == m.AttachmentType.OUTPUT]
    results.append(("output attachment exported", len(outs) == 1, "", ""))
    csv_bytes = c.run_attachments.download_sync(str(outs[0].id)).data
    results.append(("export names the run", str(frun.id).encode() in csv_bytes, "", ""))
results.append(("usage_metadata on the run", bool(fr.usage_metadata), "", str(fr.usage_metadata)[:200]))
upd = check(
    "run_attachments.update",
    c.run_attachments.update_sync(
        str(inputs[0].id), m.RunAttachmentUpdate(expires_at=datetime.datetime(2030, 1, 1))
    ),
)
now = datetime.datetime.now(datetime.timezone.utc)
agg = check(
    "usage.aggregate",
    c.usage.aggregate_sync(now - datetime.timedelta(days=1), now + datetime.timedelta(days=1)),
)
results.append(("usage counted", agg.runs_counted >= 1 and agg.total_agentic_steps > 0, "", str(agg)[:200]))
# Tags and tag groups: a group's tags are exclusive on a workflow.
grp = check("workflow_tag_groups.create", c.workflow_tag_groups.create_sync("official-group"))
check("workflow_tag_groups.get", c.workflow_tag_groups.get_sync(grp.id))
check("workflow_tag_groups.update", c.workflow_tag_groups.update_sync(grp.id, color="blue"))
check("workflow_tag_groups.list", c.workflow_tag_groups.list_sync())
check("workflow_tag_groups.reorder", c.workflow_tag_groups.reorder_sync([grp.id]))
t_hi = check("workflow_tags.create", c.workflow_tags.create_sync("official-high", group_id=grp.id))
t_lo = check("workflow_tags.create(group)", c.workflow_tags.create_sync("official-low", group_id=grp.id))
check("workflow_tags.get", c.workflow_tags.get_sync(t_hi.id))
check("workflow_tags.update", c.workflow_tags.update_sync(t_hi.id, emoji="!"))
check("workflow_tags.add_to_workflow", c.workflow_tags.add_to_workflow_sync(str(wf.id), [t_hi.id]))
on = check(
    "workflow_tags.add_to_workflow(replace)", c.workflow_tags.add_to_workflow_sync(str(wf.id), [t_lo.id])
)
results.append(
    ("a group's tag replaces the other", [t.name for t in on] == ["official-low"], "", str(on)[:200])
)
check("workflow_tags.get_for_workflow", c.workflow_tags.get_for_workflow_sync(str(wf.id)))
check(
    "workflow_tags.bulk_add_to_workflows",
    c.workflow_tags.bulk_add_to_workflows_sync([str(wf.id), str(exp_wf.id)], [t_hi.id]),
)
tagged = c.workflows.list_sync(tag_ids=[str(t_hi.id)]).data
results.append(("tag_ids filter", {w.id for w in tagged.items} == {wf.id, exp_wf.id}, "", ""))
check("workflow_tags.archive", c.workflow_tags.archive_sync(t_lo.id))
check("workflow_tags.unarchive", c.workflow_tags.unarchive_sync(t_lo.id))
check("workflow_tags.reorder", c.workflow_tags.reorder_sync([t_lo.id, t_hi.id]))
listed = check("workflow_tags.list", c.workflow_tags.list_sync(include_archived=True))
results.append(
    ("workflow_count", {t.name: t.workflow_count for t in listed}.get("official-high") == 2, "", "")
)
check("workflow_tags.remove_from_workflow", c.workflow_tags.remove_from_workflow_sync(str(wf.id), t_hi.id))
check("workflow_tags.delete", c.workflow_tags.delete_sync(t_lo.id))
gone = c.workflow_tags.get_sync(t_lo.id)
results.append(
    ("a deleted tag is gone", not isinstance(gone.data, m.WorkflowTagResponse), "", repr(gone)[:120])
)
check("workflow_tag_groups.delete", c.workflow_tag_groups.delete_sync(grp.id))
# Merge, prompt images, model configurations, run screenshots, trajectory generation.
src = c.workflows.create_sync(WorkflowCreate(main_prompt="Merged {x}", name="merge-source")).data
check(
    "workflows.merge",
    c.workflows.merge_sync(str(src.id), target_workflow_id=new_wf.id, copy_trajectories=True),
)
results.append(
    ("merge took the prompt", c.workflows.get_sync(new_wf.id).data.main_prompt == "Merged {x}", "", "")
)
png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
img = check(
    "workflows.upload_prompt_image", c.workflows.upload_prompt_image_sync(file_content=png, filename="p.png")
)
imgs = check("workflows.list_prompt_images", c.workflows.list_prompt_images_sync())
check("workflows.get_prompt_image_signed_url", c.workflows.get_prompt_image_signed_url_sync(imgs[0].path))
check("workflows.delete_prompt_image", c.workflows.delete_prompt_image_sync(imgs[0].path))
bad = c.workflows.upload_prompt_image_sync(file_content=b"%PDF-1", filename="x.pdf")
results.append(("a non-image is refused", bad.data is None or bad.error is not None, "", repr(bad)[:120]))
mcs = check("model_configurations.list", c.model_configurations.list_sync())
mc = check(
    "model_configurations.create",
    c.model_configurations.create_sync(
        ModelConfigurationCreate(name="official-model", provider="openai", model="gpt-4.1", api_key="sk-x")
    ),
)
check("model_configurations.get", c.model_configurations.get_sync(str(mc.id)))
check(
    "model_configurations.update",
    c.model_configurations.update_sync(str(mc.id), ModelConfigurationUpdate(temperature=0.5)),
)
check("model_configurations.delete", c.model_configurations.delete_sync(str(mc.id)))
image_url = next(
    b["image_url"]
    for msg in c.runs.get_sync(frun.id).data.run_message_history
    for b in msg.to_dict()["content"]
    if b.get("image_url")
)
check("runs.get_image_signed_url", c.runs.get_image_signed_url_sync(str(frun.id), image_url=image_url))
check("runs.generate_trajectory", c.runs.generate_trajectory_sync(str(run.id)))
check("run_attachments.delete", c.run_attachments.delete_sync(str(inputs[0].id)))
check("runs.delete", c.runs.delete_sync(sess.id))
check("trajectories.delete", c.trajectories.delete_sync(traj.id))
check("pools.delete", c.pools.delete_sync(np.id))
check("machines.delete", c.machines.delete_sync(nm.id))
check("workflows.delete", c.workflows.delete_sync(new_wf.id))
missing = c.runs.get_sync(UUID(int=1))
results.append(("404 surfaces as error", missing.error is not None, "", repr(missing.error)[:120]))
bad = CyberdeskClient("wrong", base_url=base_url).runs.list_sync()
results.append(("401 surfaces as error", bad.error is not None, "", repr(bad.error)[:120]))
# dimensions via the generated client (computer is not wrapped)
from openapi_client.cyberdesk_cloud_client.api.computer import (
    get_display_dimensions_v1_computer_machine_id_display_dimensions_get as dims,
)

d = dims.sync(client=c._client, machine_id=str(desk.id))
results.append(("computer dimensions", isinstance(d, m.DisplayDimensions), type(d).__name__, ""))
failed = [r for r in results if not r[1]]
for name, ok, t, err in results:
    print(("OK  " if ok else "FAIL"), name, t, err if (not ok or name.startswith("output")) else "")
print(f"{len(results) - len(failed)}/{len(results)} checks passed")
sys.exit(1 if failed else 0)
