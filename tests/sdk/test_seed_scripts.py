"""The seed README's examples, as a user runs them: each in a fresh interpreter against the emulator, printing no
traceback and no warning (no aiohttp "Unclosed client session" from the async example that never closes its
client, no ResourceWarning). Only the placeholders change: the API key and base URL, the ids, a shorter sleep.
"""

import subprocess
import sys
from typing import Any

import httpx
import pytest

QUICK_START = """
from cyberdesk import CyberdeskClient, RunCreate
import time

# Initialize the client
client = CyberdeskClient(api_key="your-api-key")

# Create a run for your workflow
run_data = RunCreate(
    workflow_id="your-workflow-id",
    machine_id="your-machine-id",
    input_values={
        # Your workflow-specific input data
        "patient_id": "12345",
        "patient_first_name": "John",
        "patient_last_name": "Doe"
    }
)

response = client.runs.create_sync(run_data)
if response.error:
    print(f"Error creating run: {response.error}")
else:
    run = response.data

    # Wait for the run to complete
    while run.status in ["scheduling", "running"]:
        time.sleep(5)  # Wait 5 seconds
        response = client.runs.get_sync(run.id)
        run = response.data

    # Get the output data
    if run.status == "success":
        print("Result:", run.output_data)
    else:
        print("Run failed:", ", ".join(run.error or []))
"""

DESKTOP_PARAMETERS_AND_ERRORS = """
from cyberdesk import CyberdeskClient, MachineUpdate

client = CyberdeskClient(api_key="your-api-key")

# Set desktop parameters for a machine
client.machines.update_sync(
    machine_id="machine-id",
    data=MachineUpdate(
        machine_parameters={
            "username": "machine_specific_user",
            "api_url": "https://api-region-east.example.com",
            "config_path": "C:\\\\MachineA\\\\config.json"
        },
        machine_sensitive_parameters={
            "password": "actual_secret_value",  # Stored securely in Basis Theory
            "api_key": "actual_api_key_123"
        }
    )
)

response = client.machines.get_sync("invalid-id")
if response.error:
    print(f"Error: {response.error}")
else:
    print(f"Machine: {response.data.name}")

with CyberdeskClient(api_key="your-api-key") as client:
    response = client.machines.list_sync()
    # Client will be properly closed when exiting the context
    print("machines:", response.data.total)
"""

ASYNC = """
import asyncio
from cyberdesk import CyberdeskClient

async def main():
    client = CyberdeskClient(api_key="your-api-key")

    # Async method
    response = await client.machines.list()
    if response.data:
        for machine in response.data.items:
            print(f"Machine: {machine.name}")

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (QUICK_START, ("Result:", "Run failed:")),
        (DESKTOP_PARAMETERS_AND_ERRORS, ("Error: machines.get_sync: invalid_argument: machine_id",)),
        (ASYNC, ("Machine: bos-desk-01",)),
    ],
    ids=["quick start", "desktop parameters, error handling, context manager", "async"],
)
def test_a_seed_example_runs_as_a_script_without_traceback_or_warning(
    cyberdesk_emulator_factory: Any, script: str, expected: tuple[str, ...]
) -> None:
    emulator = cyberdesk_emulator_factory(speed=100)
    with httpx.Client(base_url=emulator.base_url, headers=emulator.headers) as api:
        workflow_id = api.get("/v1/workflows").json()["items"][0]["id"]
        machine_id = api.get("/v1/machines").json()["items"][0]["id"]
    filled = (
        script.replace(
            'api_key="your-api-key"', f'api_key="{emulator.api_key}", base_url="{emulator.base_url}"'
        )
        .replace('"your-workflow-id"', f'"{workflow_id}"')
        .replace('"your-machine-id"', f'"{machine_id}"')
        .replace('"machine-id"', f'"{machine_id}"')
        .replace("time.sleep(5)", "time.sleep(0.05)")
    )
    # -W default: also show the warnings Python hides by default (ResourceWarning for an unclosed socket...).
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", filled], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Traceback" not in done.stdout and "Warning" not in done.stdout
    assert any(line in done.stdout for line in expected), done.stdout
