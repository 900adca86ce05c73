"""The seed README's examples, run against a MockTransport that speaks the real API."""

import json
from typing import Any, cast
from uuid import uuid4

import httpx
from fastapi import FastAPI, HTTPException, Request
from svix.webhooks import Webhook, WebhookVerificationError

from cyberdesk import CyberdeskClient, MachineUpdate, RunCompletedEvent, RunCreate, RunResponse, webhooks

from .helpers import MID, NOW, WID, machine_json, page_json, run_json

API_KEY = "your-api-key"


class FakeCyberdesk:
    """Just enough of the API for the README: runs that progress on each poll, machines with parameters."""

    def __init__(self) -> None:
        self.machines: dict[str, dict[str, Any]] = {MID: machine_json()}
        self.runs: dict[str, dict[str, Any]] = {}
        self.hosts: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.add(request.url.host)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return httpx.Response(401, json={"detail": "Invalid API key"})
        parts = request.url.path.strip("/").split("/")[1:]
        body = json.loads(request.content) if request.content else None
        match request.method, parts:
            case "POST", ["runs"]:
                run = run_json(id=str(uuid4()), workflow_id=body["workflow_id"], machine_id=body.get("machine_id"),
                               input_values=body.get("input_values"), started_at=None, ended_at=None)  # fmt: skip
                self.runs[run["id"]] = run
                return httpx.Response(201, json=run)
            case "GET", ["runs", run_id] if run_id in self.runs:
                return httpx.Response(200, json=self._advance(self.runs[run_id]))
            case "GET", ["machines"]:
                return httpx.Response(200, json=page_json(list(self.machines.values())))
            case "GET", ["machines", machine_id] if machine_id in self.machines:
                return httpx.Response(200, json=self.machines[machine_id])
            case "PATCH", ["machines", machine_id] if machine_id in self.machines:
                machine = self.machines[machine_id]
                machine.update(body)
                if "machine_sensitive_parameters" in body:  # the server vaults secrets and keeps aliases
                    machine["machine_sensitive_parameters"] = {
                        k: f"tok_{k}" for k in body["machine_sensitive_parameters"]
                    }
                return httpx.Response(200, json=machine)
        return httpx.Response(404, json={"detail": "Not Found"})

    @staticmethod
    def _advance(run: dict[str, Any]) -> dict[str, Any]:
        if run["status"] == "scheduling":
            run.update(status="running", started_at=NOW)
        elif run["status"] == "running":
            run.update(
                status="success", ended_at=NOW, output_data={"patient": run["input_values"]["patient_id"]}
            )
        return run


def make(fake: FakeCyberdesk, **kw: Any) -> CyberdeskClient:
    return CyberdeskClient(api_key=API_KEY, transport=httpx.MockTransport(fake), **kw)


def test_quick_start() -> None:
    fake = FakeCyberdesk()
    client = make(fake)
    run_data = RunCreate(
        workflow_id=WID,
        machine_id=MID,
        input_values={"patient_id": "12345", "patient_first_name": "John", "patient_last_name": "Doe"},
    )
    response = client.runs.create_sync(run_data)
    assert not response.error
    run = response.data
    polls = 0
    while run.status in ["scheduling", "running"]:
        polls += 1  # the README sleeps 5 s here
        response = client.runs.get_sync(run.id)
        run = response.data
    assert run.status == "success" and polls == 2
    assert run.output_data == {"patient": "12345"}
    assert ", ".join(run.error or []) == ""
    client.close()


def test_desktop_parameters() -> None:
    fake = FakeCyberdesk()
    client = make(fake)
    response = client.machines.update_sync(
        machine_id=MID,
        data=MachineUpdate(
            machine_parameters={
                "username": "machine_specific_user",
                "config_path": "C:\\MachineA\\config.json",
            },
            machine_sensitive_parameters={"password": "actual_secret_value"},
        ),
    )
    assert response.data.machine_parameters["username"] == "machine_specific_user"
    assert response.data.machine_sensitive_parameters == {"password": "tok_password"}
    client.close()


async def test_async_listing() -> None:
    fake = FakeCyberdesk()
    client = CyberdeskClient(api_key=API_KEY, async_transport=httpx.MockTransport(fake))
    response = await client.machines.list()
    assert response.data
    assert [machine.name for machine in response.data.items] == ["desk-1"]
    await client.aclose()


def test_error_handling() -> None:
    client = make(FakeCyberdesk())
    response = client.machines.get_sync(str(uuid4()))
    assert response.error and response.error.status_code == 404
    assert f"{response.error}".endswith("404 Not Found: {'detail': 'Not Found'}")
    wrong_key = CyberdeskClient(api_key="other", transport=httpx.MockTransport(FakeCyberdesk()))
    assert wrong_key.machines.list_sync().error.status_code == 401
    client.close()
    wrong_key.close()


def test_context_manager_and_custom_base_url() -> None:
    fake = FakeCyberdesk()
    with make(fake) as client:
        assert client.machines.list_sync().data.total == 1
    with make(fake, base_url="https://custom-api.cyberdesk.io") as client:
        client.machines.list_sync()
    assert fake.hosts == {"api.cyberdesk.io", "custom-api.cyberdesk.io"}


def webhook_app(secret: str, seen: list[Any]) -> FastAPI:
    app = FastAPI()

    @app.post("/webhooks/cyberdesk")
    async def cyberdesk_webhook(request: Request) -> dict[str, bool]:  # the README's handler
        wh = Webhook(secret)
        payload = await request.body()
        headers = {
            "svix-id": request.headers.get("svix-id"),
            "svix-timestamp": request.headers.get("svix-timestamp"),
            "svix-signature": request.headers.get("svix-signature"),
        }
        try:
            data = wh.verify(payload, headers)  # type: ignore[arg-type, func-returns-value]
            if data is None:  # svix >= 2 verifies without returning the body (1.x returned it parsed)
                data = json.loads(payload)
            evt = RunCompletedEvent.from_dict(data)
            run: RunResponse = cast(RunResponse, evt.run)
            if run.status == "success":
                seen.append((run.id, run.output_data))
            return {"ok": True}
        except WebhookVerificationError:
            raise HTTPException(status_code=400, detail="Invalid signature") from None

    @app.post("/webhooks/typed")
    async def typed_webhook(request: Request) -> dict[str, bool]:  # the same with cyberdesk.webhooks
        try:
            event = webhooks.verify(await request.body(), request.headers, secret)
        except webhooks.WebhookVerificationError:
            raise HTTPException(status_code=400, detail="Invalid signature") from None
        seen.append(event)
        return {"ok": True}

    return app


async def test_webhook_handler() -> None:
    secret = webhooks.generate_secret()
    seen: list[Any] = []
    body = json.dumps({"event_type": "run_complete", "run": run_json(status="success", output_data={"n": 1})})
    transport = httpx.ASGITransport(app=webhook_app(secret, seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        for path in ("/webhooks/cyberdesk", "/webhooks/typed"):
            signed = webhooks.sign(body.encode(), secret)
            assert (await http.post(path, content=body, headers=signed)).json() == {"ok": True}
            other = webhooks.sign(body.encode(), webhooks.generate_secret())
            forged = {**signed, "svix-signature": other["svix-signature"]}
            assert (await http.post(path, content=body, headers=forged)).status_code == 400
            assert (await http.post(path, content=body)).status_code == 400
    assert seen[0][1] == {"n": 1} and isinstance(seen[1], RunCompletedEvent)
