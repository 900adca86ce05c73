"""Files through the SDK, sync and async: streamed downloads (``download_to``, ``save_to_file``) and the
multipart prompt-image upload."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cyberdesk import CyberdeskClient, ErrorKind, SavedFile

from .helpers import AID, Api, Chunks, attachment_json, call


def body(pieces: list[bytes], fail_after: int | None = None, length: int | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/pdf"}
    if length is not None:
        headers["Content-Length"] = str(length)
    return httpx.Response(200, headers=headers, stream=Chunks(pieces, fail_after))


def replies(*responses: Callable[[], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        return (queue.pop(0) if len(queue) > 1 else queue[0])()

    return answer


PIECES = [b"%PDF-1.4\n", b"x" * 65536, b"%%EOF\n"]
WHOLE = b"".join(PIECES)


async def test_download_to_streams_the_body_into_the_file(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(replies(lambda: body(PIECES, length=len(WHOLE))))
    target = tmp_path / "out.pdf"
    response = await call(make_client(api), mode, "run_attachments", "download_to", AID, target)
    assert response.error is None
    assert response.data == SavedFile(path=target, size=len(WHOLE))
    assert target.read_bytes() == WHOLE
    assert not (tmp_path / "out.pdf.part").exists()
    assert api.last.url.path == f"/v1/run-attachments/{AID}/download"


async def test_a_body_cut_short_is_retried_and_never_leaves_a_partial_file(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(
        replies(
            lambda: body(PIECES, fail_after=2, length=len(WHOLE)),
            lambda: body(PIECES, length=len(WHOLE)),
        )
    )
    target = tmp_path / "out.pdf"
    response = await call(make_client(api), mode, "run_attachments", "download_to", AID, target)
    assert response.error is None and target.read_bytes() == WHOLE
    assert len(api.requests) == 2


async def test_a_download_failing_for_good_leaves_no_file(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(replies(lambda: body(PIECES[:2], length=len(WHOLE))))  # always shorter than announced
    target = tmp_path / "out.pdf"
    response = await call(make_client(api), mode, "run_attachments", "download_to", AID, target)
    assert response.error is not None and response.error.kind is ErrorKind.NETWORK
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


async def test_an_error_status_is_an_error_with_its_body_and_writes_nothing(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(httpx.Response(404, json={"detail": "Attachment not found"}))
    response = await call(make_client(api), mode, "run_attachments", "download_to", AID, tmp_path / "x")
    assert response.error is not None and response.error.status_code == 404
    assert response.error.detail == {"detail": "Attachment not found"}
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


@pytest.mark.parametrize("filename", ["report.csv", "../../etc/report.csv", "C:\\Users\\x\\report.csv"])
async def test_save_to_file_puts_the_attachment_under_its_own_plain_name_in_a_folder(
    filename: str, mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(
        httpx.Response(200, json=attachment_json(filename=filename)), httpx.Response(200, content=b"a,b\n")
    )
    response = await call(make_client(api), mode, "run_attachments", "save_to_file", AID, tmp_path)
    assert response.error is None
    assert response.data == SavedFile(path=tmp_path / "report.csv", size=4)
    assert (tmp_path / "report.csv").read_bytes() == b"a,b\n"
    assert [r.url.path for r in api.requests] == [
        f"/v1/run-attachments/{AID}",
        f"/v1/run-attachments/{AID}/download",
    ]


async def test_save_to_file_to_a_file_path_and_to_the_current_folder(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(httpx.Response(200, json=attachment_json()), httpx.Response(200, content=b"pdf"))
    client = make_client(api)
    explicit = await call(client, mode, "run_attachments", "save_to_file", AID, tmp_path / "mine.pdf")
    assert explicit.data == SavedFile(path=tmp_path / "mine.pdf", size=3)
    api.replies = [httpx.Response(200, json=attachment_json()), httpx.Response(200, content=b"pdf")]
    monkeypatch.chdir(tmp_path)
    default = await call(client, mode, "run_attachments", "save_to_file", AID)
    assert default.data == SavedFile(path=Path("invoice.pdf"), size=3)
    assert (tmp_path / "invoice.pdf").read_bytes() == b"pdf"


async def test_save_to_file_stops_at_a_failed_metadata_call(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    api = Api(httpx.Response(404, json={"detail": "Attachment not found"}))
    response = await call(make_client(api), mode, "run_attachments", "save_to_file", AID, tmp_path)
    assert response.error is not None and response.error.status_code == 404
    assert len(api.requests) == 1 and not any(tmp_path.iterdir())  # noqa: ASYNC240


IMAGE = {"supabase_url": "supabase://workflow-prompt-images/org/a.png", "signed_url": "https://s/a.png",
         "filename": "a.png", "content_type": "image/png", "size_bytes": 4}  # fmt: skip


async def test_upload_prompt_image_sends_a_multipart_file_from_a_path(
    mode: str, make_client: Callable[..., CyberdeskClient], tmp_path: Path
) -> None:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    api = Api(httpx.Response(201, json=IMAGE))
    response = await call(make_client(api), mode, "workflows", "upload_prompt_image", tmp_path / "logo.png")
    assert response.error is None and response.data.supabase_url == IMAGE["supabase_url"]
    request = api.last
    assert (request.method, request.url.path) == ("POST", "/v1/workflows/prompt-image")
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    content = request.read()
    assert b'name="file"; filename="logo.png"' in content
    assert b"Content-Type: image/png" in content and b"\x89PNG" in content
    assert "Idempotency-Key" in request.headers


async def test_upload_prompt_image_from_bytes_takes_the_type_from_the_name_or_the_caller(
    mode: str, make_client: Callable[..., CyberdeskClient]
) -> None:
    api = Api(httpx.Response(201, json=IMAGE))
    client = make_client(api)
    await call(client, mode, "workflows", "upload_prompt_image", file_content=b"GIF89a", filename="x.gif")
    assert b"Content-Type: image/gif" in api.last.read()
    await call(
        client, mode, "workflows", "upload_prompt_image", file_content=b"RIFF", content_type="image/webp"
    )
    assert b'filename="image"' in api.last.read() and b"Content-Type: image/webp" in api.last.read()


@pytest.mark.parametrize("kwargs", [{}, {"file_path": "a.png", "file_content": b"x"}])
def test_upload_prompt_image_needs_exactly_one_source(kwargs: dict[str, object]) -> None:
    sent: list[httpx.Request] = []
    client = CyberdeskClient(
        "k", transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(500))
    )
    response = client.workflows.upload_prompt_image_sync(**kwargs)  # type: ignore[arg-type]
    assert response.data is None and response.error is not None
    assert response.error.kind is ErrorKind.INVALID_ARGUMENT
    assert "file_path" in str(response.error) and "file_content" in str(response.error)
    assert sent == []
