"""Google's Files API with resumable uploads, as the SDKs use it.

Files belong to the project whose key uploaded them: another project's key gets 403, as at
Google. The upload URL itself is the credential for the chunks (they carry no API key).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from gemgate.simulator import errors, validate
from gemgate.simulator.core import Simulator
from gemgate.simulator.server import VERSIONS, api_key, json_response


@dataclass
class _Upload:
    project: str
    display_name: str
    mime_type: str
    size: int
    data: bytearray = field(default_factory=bytearray)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FilesSurface:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._uploads: dict[str, _Upload] = {}
        self._files: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (project, file)
        self._data: dict[str, bytes] = {}  # id -> content (a batch job reads its input file)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"/upload/{{version:{VERSIONS}}}/files", self.upload),
            web.get(f"/{{version:{VERSIONS}}}/files", self.list_files),
            web.get(f"/{{version:{VERSIONS}}}/files/{{id}}", self.get_file),
            web.delete(f"/{{version:{VERSIONS}}}/files/{{id}}", self.delete_file),
        ]

    def owner_of(self, file_id: str) -> str | None:
        found = self._files.get(file_id)
        return found[0] if found else None

    def data_of(self, file_id: str) -> bytes:
        return self._data.get(file_id, b"")

    def store(self, project: str, display_name: str, data: bytes, mime_type: str,
              generated: bool = False) -> str:
        """A file made by the simulator itself (a batch job's results): its name."""
        file_id = base64.b32encode(os.urandom(8)).decode().lower().rstrip("=")
        self._files[file_id] = (project, self._described(file_id, display_name, mime_type, data,
                                                         "GENERATED" if generated else "UPLOADED"))
        self._data[file_id] = data
        return f"files/{file_id}"

    @staticmethod
    def _described(file_id: str, display_name: str, mime_type: str, data: bytes,
                   source: str) -> dict[str, Any]:
        now = _now()
        described = {
            "name": f"files/{file_id}", "displayName": display_name,
            "mimeType": mime_type, "sizeBytes": str(len(data)),
            "createTime": _stamp(now), "updateTime": _stamp(now),
            "expirationTime": _stamp(now + timedelta(hours=48)),
            "sha256Hash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "uri": f"https://generativelanguage.googleapis.com/v1beta/files/{file_id}",
            "state": "ACTIVE", "source": source,
        }
        if source == "GENERATED":
            described["downloadUri"] = (f"https://generativelanguage.googleapis.com/download/"
                                        f"v1beta/files/{file_id}:download?alt=media")
        return described

    async def upload(self, request: web.Request) -> web.Response:
        if "upload_id" in request.query:
            return await self._chunk(request)
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            self.sim.record(caller, "", "files.upload", (denial or errors.missing_key())[0])
            return json_response(*(denial or errors.missing_key()))
        if request.headers.get("X-Goog-Upload-Command", "").lower() != "start":
            return json_response(*errors.invalid_argument("Upload command must be 'start'.", ""))
        try:
            meta = validate.parse_json_object(await request.read()).get("file") or {}
        except validate.Invalid as exc:
            self.sim.record(caller, "", "files.upload", 400)
            return json_response(*errors.invalid_argument(str(exc), ""))
        meta = meta if isinstance(meta, dict) else {}
        upload_id = base64.urlsafe_b64encode(os.urandom(18)).decode()
        self._uploads[upload_id] = _Upload(
            caller.project.name, str(meta.get("displayName") or meta.get("display_name") or ""),
            request.headers.get("X-Goog-Upload-Header-Content-Type", "application/octet-stream"),
            int(request.headers.get("X-Goog-Upload-Header-Content-Length", "0") or 0))
        self.sim.record(caller, "", "files.upload", 200)
        url = (f"{request.scheme}://{request.host}{request.path}?upload_id={upload_id}"
               "&upload_protocol=resumable")
        return web.Response(status=200, headers={"x-goog-upload-url": url,
                                                 "x-goog-upload-status": "active",
                                                 "x-goog-upload-chunk-granularity": "8388608"})

    async def _chunk(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.query["upload_id"])
        if upload is None:
            return json_response(404, orjson.dumps({"error": {
                "code": 404, "message": "Upload not found.", "status": "NOT_FOUND"}}))
        command = request.headers.get("X-Goog-Upload-Command", "").lower()
        offset = int(request.headers.get("X-Goog-Upload-Offset", "0") or 0)
        if offset != len(upload.data):
            return json_response(*errors.invalid_argument("Upload offset mismatch.", ""))
        upload.data += await request.read()
        if "finalize" not in command:
            return web.Response(status=200, headers={"x-goog-upload-status": "active"})
        del self._uploads[request.query["upload_id"]]
        name = self.store(upload.project, upload.display_name, bytes(upload.data), upload.mime_type)
        described = self._files[name.removeprefix("files/")][1]
        described["uri"] = f"{request.scheme}://{request.host}/v1beta/{name}"
        return web.Response(status=200, body=orjson.dumps({"file": described}),
                            content_type="application/json",
                            headers={"x-goog-upload-status": "final"})

    def _owned(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return None, json_response(*(denial or errors.missing_key()))
        file_id = request.match_info["id"].removesuffix(":download")
        found = self._files.get(file_id)
        if found is None or found[0] != caller.project.name:
            message = (f"You do not have permission to access the File {file_id} or it may not "
                       "exist.")
            return None, json_response(403, orjson.dumps({"error": {
                "code": 403, "message": message, "status": "PERMISSION_DENIED"}}))
        self.sim.record(caller, "", "files.get", 200)
        return found[1], None

    async def get_file(self, request: web.Request) -> web.Response:
        described, refusal = self._owned(request)
        if refusal is None and request.match_info["id"].endswith(":download"):
            file_id = request.match_info["id"].removesuffix(":download")
            return web.Response(body=self._data.get(file_id, b""),
                                content_type="application/octet-stream")
        return refusal or json_response(200, orjson.dumps(described))

    async def delete_file(self, request: web.Request) -> web.Response:
        _, refusal = self._owned(request)
        if refusal:
            return refusal
        del self._files[request.match_info["id"]]
        self._data.pop(request.match_info["id"], None)
        return json_response(200, b"{}")

    async def list_files(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return json_response(*(denial or errors.missing_key()))
        mine = [f for project, f in self._files.values() if project == caller.project.name]
        return json_response(200, orjson.dumps({"files": mine} if mine else {}))
