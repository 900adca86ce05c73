"""JSON Schema of job files, for editor completion and checks (yaml-language-server `$schema` comment).

Regenerate the shipped copy with:
    python -m cyberdesk_runner.spec.schema > runner/cyberdesk_runner/job-schema.json
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from cyberdesk_runner.durations import format_duration
from cyberdesk_runner.spec.models import JobSpec

__all__ = ["job_json_schema", "main"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # Show duration defaults as they are written in job files ("30s"), not as ISO 8601 ("PT30S").
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def job_json_schema() -> dict[str, Any]:
    """The JSON Schema of a job file, generated from `JobSpec`."""
    return {"$schema": _DIALECT, **JobSpec.model_json_schema(schema_generator=_Generator)}


def main() -> None:
    print(json.dumps(job_json_schema(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
