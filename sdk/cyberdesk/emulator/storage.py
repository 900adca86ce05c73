"""Stored images behind signed URLs: workflow prompt images and run screenshots.

A `supabase://<bucket>/<path>` reference names each image, as in the real API. The emulator "signs" a URL with an
HMAC of the bucket, path and expiry keyed by its API key; `/_emulator/storage/...` serves the bytes to a valid,
unexpired URL without the API key, as a real signed URL does.

Emulator choices: a prompt image is PNG, JPEG, GIF or WebP (told by its leading bytes, not by the declared type)
of at most 10 MB, as documented; it is stored under `org_emulator/prompt-assets/<8 hex>-<file name>`.
A run's screenshots are `supabase://run-images/org_emulator/<run id>/step-<n>.png`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from cyberdesk.emulator.errors import EmulatorError, NotFound
from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.records import ORGANIZATION_ID, PromptImage, Run

PROMPT_IMAGES = "workflow-prompt-images"
RUN_IMAGES = "run-images"
MAX_PROMPT_IMAGE_BYTES = 10 * 1024 * 1024

# Leading bytes of each accepted image type (WebP: "RIFF" + 4 size bytes + "WEBP").
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class PayloadTooLarge(EmulatorError):
    status_code = 413


class UnsupportedMediaType(EmulatorError):
    status_code = 415


def image_type(content: bytes) -> str | None:
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _SIGNATURES if content.startswith(magic)), None)


def reference(bucket: str, path: str) -> str:
    return f"supabase://{bucket}/{path}"


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs and checks `/_emulator/storage/<bucket>/<path>?expires=..&signature=..` URLs."""

    secret: str

    def signature(self, bucket: str, path: str, expires: int) -> str:
        message = f"{bucket}/{path}:{expires}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def url(self, base_url: str, bucket: str, path: str, expires: int) -> str:
        query = urlencode({"expires": expires, "signature": self.signature(bucket, path, expires)})
        return f"{base_url.rstrip('/')}/_emulator/storage/{bucket}/{quote(path)}?{query}"

    def valid(self, bucket: str, path: str, expires: int, signature: str, now: float) -> bool:
        return now <= expires and hmac.compare_digest(signature, self.signature(bucket, path, expires))


class PromptImages:
    """Prompt images of the organisation by storage path."""

    def __init__(self, ids: IdFactory) -> None:
        self.ids = ids
        self.by_path: dict[str, PromptImage] = {}

    def upload(self, filename: str | None, content: bytes, now: float) -> PromptImage:
        if len(content) > MAX_PROMPT_IMAGE_BYTES:
            raise PayloadTooLarge(f"file: an image may be at most {MAX_PROMPT_IMAGE_BYTES // 2**20} MB")
        kind = image_type(content)
        if kind is None:
            raise UnsupportedMediaType("file: the image must be PNG, JPEG, GIF or WebP")
        name = (filename or "image").replace("\\", "/").rsplit("/", 1)[-1] or "image"
        path = f"{ORGANIZATION_ID}/prompt-assets/{self.ids.token('img', 4)[4:]}-{name}"
        image = PromptImage(path, name, kind, content, now)
        self.by_path[path] = image
        return image

    def get(self, path: str) -> PromptImage:
        found = self.by_path.get(path)
        if found is None:
            raise NotFound("Prompt image not found")
        return found

    def delete(self, path: str) -> None:
        self.get(path)
        del self.by_path[path]


def screenshot_path(run: Run, step: int) -> str:
    return f"{ORGANIZATION_ID}/{run.id}/step-{step}.png"


def message_history(run: Run, prompt: str) -> list[dict[str, object]]:
    """What an ended run that ran shows: the prompt, then the agent's screenshot of the desktop."""
    return [
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
        {
            "role": "assistant",
            "content": [{"type": "image", "image_url": reference(RUN_IMAGES, screenshot_path(run, 1))}],
        },
    ]


def run_image_path(run: Run, image_url: str) -> str:
    """The storage path of a screenshot referenced in the run's message history (404 otherwise)."""
    referenced = {
        block.get("image_url")
        for message in run.run_message_history or ()
        for block in message.get("content") or ()
        if isinstance(block, dict)
    }
    prefix = f"supabase://{RUN_IMAGES}/"
    if image_url not in referenced or not image_url.startswith(prefix):
        raise NotFound("Image not found in this run's message history")
    return image_url[len(prefix) :]
