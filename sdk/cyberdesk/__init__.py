"""Typed Python client of the Cyberdesk cloud API.

``CyberdeskClient`` is the entry point; every call returns an ``ApiResponse`` whose ``error`` is an ``ApiError``.
Every model and enum of the API is importable from here.
"""

from . import webhooks
from ._core import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, RetryConfig, RetryEvent
from ._operation import SavedFile
from ._response import ApiResponse
from ._types import UNSET, Unset
from .client import CyberdeskClient
from .errors import ApiError, CyberdeskError, ErrorKind
from .models import *  # noqa: F403 - the models' __all__ is part of this package's API
from .models import __all__ as _models_all
from .pagination import DEFAULT_PAGE_SIZE
from .webhooks import WebhookVerificationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "UNSET",
    "ApiError",
    "ApiResponse",
    "CyberdeskClient",
    "CyberdeskError",
    "ErrorKind",
    "RetryConfig",
    "RetryEvent",
    "SavedFile",
    "Unset",
    "WebhookVerificationError",
    "webhooks",
    *_models_all,
]
