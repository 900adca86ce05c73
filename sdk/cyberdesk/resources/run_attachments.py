"""``client.run_attachments``: the files of runs, in (``file_inputs``) and out (exports); downloads stream to disk."""

from pathlib import Path, PurePosixPath, PureWindowsPath
from uuid import UUID

from .._operation import (
    Call,
    Flow,
    Query,
    Resource,
    SavedFile,
    flow,
    ids,
    json_body,
    no_content,
    operation,
    opt_uuid_arg,
    page_of,
    raw_bytes,
    saved_file,
)
from .._response import ApiResponse
from ..models import (
    AttachmentType,
    Page,
    RunAttachmentCreate,
    RunAttachmentDownloadUrlResponse,
    RunAttachmentResponse,
    RunAttachmentUpdate,
)
from ..pagination import paginated

_ONE = "/v1/run-attachments/{attachment_id}"


def safe_filename(filename: str) -> str:
    """A server-given file name reduced to a plain local name: no folders (POSIX or Windows), no ``..``."""
    name = PureWindowsPath(PurePosixPath(filename).name).name
    if name in {"", ".", ".."}:
        raise ValueError(f"attachment filename {filename!r} is not a usable file name")
    return name


class RunAttachments(Resource):
    def _list(
        self,
        skip: int | None = None,
        limit: int | None = None,
        run_id: UUID | str | None = None,
        attachment_type: AttachmentType | None = None,
    ) -> Call[Page[RunAttachmentResponse]]:
        """List attachments, optionally of one run and of one type (``input`` / ``output``)."""
        query: Query = {
            "skip": skip,
            "limit": limit,
            "run_id": opt_uuid_arg("run_id", run_id),
            "attachment_type": attachment_type,
        }
        return Call("GET", "/v1/run-attachments", page_of(RunAttachmentResponse.from_dict), query=query)

    list, list_sync = operation(_list)
    iter, iter_sync = paginated(_list)

    def _create(
        self, data: RunAttachmentCreate, *, idempotency_key: str | None = None
    ) -> Call[RunAttachmentResponse]:
        """Attach a file (base64 ``content``) to an existing run. Files for a new run go in ``file_inputs``."""
        return Call(
            "POST",
            "/v1/run-attachments",
            json_body(RunAttachmentResponse.from_dict),
            body=data,
            success=201,
            idempotency_key=idempotency_key,
        )

    create, create_sync = operation(_create)

    def _get(self, attachment_id: UUID | str) -> Call[RunAttachmentResponse]:
        """An attachment's metadata."""
        return Call(
            "GET",
            _ONE,
            json_body(RunAttachmentResponse.from_dict),
            path_params=ids(attachment_id=attachment_id),
        )

    get, get_sync = operation(_get)

    def _update(
        self, attachment_id: UUID | str, data: RunAttachmentUpdate, *, idempotency_key: str | None = None
    ) -> Call[RunAttachmentResponse]:
        """Set (or clear, with ``None``) the attachment's ``expires_at``."""
        return Call(
            "PUT",
            _ONE,
            json_body(RunAttachmentResponse.from_dict),
            path_params=ids(attachment_id=attachment_id),
            body=data,
            idempotency_key=idempotency_key,
        )

    update, update_sync = operation(_update)

    def _delete(self, attachment_id: UUID | str, *, idempotency_key: str | None = None) -> Call[None]:
        """Delete the attachment and its stored file. Success: ``data is None``."""
        return Call(
            "DELETE",
            _ONE,
            no_content,
            path_params=ids(attachment_id=attachment_id),
            success=204,
            idempotency_key=idempotency_key,
        )

    delete, delete_sync = operation(_delete)

    def _get_download_url(
        self, attachment_id: UUID | str, expires_in: int | None = None
    ) -> Call[RunAttachmentDownloadUrlResponse]:
        """A signed URL that downloads the file; ``expires_in`` seconds (10-3600, server default 300)."""
        return Call(
            "GET",
            _ONE + "/download-url",
            json_body(RunAttachmentDownloadUrlResponse.from_dict),
            path_params=ids(attachment_id=attachment_id),
            query={"expires_in": expires_in},
        )

    get_download_url, get_download_url_sync = operation(_get_download_url)

    def _download(self, attachment_id: UUID | str) -> Call[bytes]:
        """The file's bytes, in memory. For large files use ``download_to`` or ``save_to_file`` (streamed)."""
        return Call("GET", _ONE + "/download", raw_bytes, path_params=ids(attachment_id=attachment_id))

    download, download_sync = operation(_download)

    def _download_to(self, attachment_id: UUID | str, path: str | Path) -> Call[SavedFile]:
        """Stream the file into ``path`` (never whole in memory). ``path`` appears only once the download is
        complete and its length checked; a failed download leaves nothing behind."""
        target = Path(path)
        return Call(
            "GET",
            _ONE + "/download",
            saved_file(target),
            path_params=ids(attachment_id=attachment_id),
            download_to=target,
        )

    download_to, download_to_sync = operation(_download_to)

    def _save_to_file(
        self,
        attachment_id: UUID | str,
        output_path: str | Path | None = None,
        use_original_filename: bool = True,
    ) -> Flow[SavedFile]:
        """Download into ``output_path`` (streamed): a file path, or a folder to put the attachment's own file
        name in (``use_original_filename``), or by default the current folder. The server's file name is cut
        down to a plain name (no folders, no ``..``). ``data`` is the :class:`SavedFile`."""
        info: ApiResponse[RunAttachmentResponse] = yield self._get(attachment_id)
        if info.error is not None or info.data is None:
            return ApiResponse(error=info.error)
        if output_path is None:
            target = Path(safe_filename(info.data.filename))
        else:
            target = Path(output_path)
            if use_original_filename and target.is_dir():
                target = target / safe_filename(info.data.filename)
        saved: ApiResponse[SavedFile] = yield self._download_to(attachment_id, target)
        return saved

    save_to_file, save_to_file_sync = flow(_save_to_file)
