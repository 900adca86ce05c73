"""The resources of ``CyberdeskClient``: each operation once, as an async ``name()`` and a sync ``name_sync()``."""

from .computer import Computer
from .connections import Connections
from .health import Health
from .machines import Machines
from .pools import Pools
from .run_attachments import RunAttachments
from .runs import Runs
from .trajectories import Trajectories
from .usage import ModelConfigurations, Usage
from .workflow_tags import WorkflowTagGroups, WorkflowTags
from .workflows import Workflows

__all__ = [
    "Computer",
    "Connections",
    "Health",
    "Machines",
    "ModelConfigurations",
    "Pools",
    "RunAttachments",
    "Runs",
    "Trajectories",
    "Usage",
    "WorkflowTagGroups",
    "WorkflowTags",
    "Workflows",
]
