"""``client.computer``: direct access to a machine's display."""

from uuid import UUID

from .._operation import Call, Resource, ids, json_body, operation, raw_bytes
from ..models import DisplayDimensions


class Computer(Resource):
    def _screenshot(self, machine_id: UUID | str) -> Call[bytes]:
        """A screenshot of the machine's display, as PNG bytes."""
        return Call(
            "GET",
            "/v1/computer/{machine_id}/display/screenshot",
            raw_bytes,
            path_params=ids(machine_id=machine_id),
        )

    screenshot, screenshot_sync = operation(_screenshot)

    def _get_display_dimensions(self, machine_id: UUID | str) -> Call[DisplayDimensions]:
        return Call(
            "GET",
            "/v1/computer/{machine_id}/display/dimensions",
            json_body(DisplayDimensions.from_dict),
            path_params=ids(machine_id=machine_id),
        )

    get_display_dimensions, get_display_dimensions_sync = operation(_get_display_dimensions)
