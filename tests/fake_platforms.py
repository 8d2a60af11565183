"""YouTube, Google's token endpoint, TikTok and Instagram on one local server, speaking their upload
protocols as their documents describe them, and keeping every byte they are sent.

- YouTube (`/yt`): `POST /upload/youtube/v3/videos?uploadType=resumable` answers a session URI in
  `Location`; `PUT` with `Content-Range: bytes A-B/T` stores the bytes (a connection cut mid-body keeps
  what arrived) and answers 308 with `Range` until the last byte, then 201 with the video; `PUT` with
  `bytes */T` reports the same. Quota refusals are Google's 403 `quotaExceeded` JSON.
- Google OAuth (`/token`): `refresh_token` and `authorization_code` grants; access tokens can be
  made to expire mid-upload (`expire_after_puts`), answered with 401 until refreshed.
- TikTok (`/tt`): `creator_info/query`, `video/init` (checking chunk rules), chunk `PUT`s in order only
  (`uploaded_bytes` counts whole chunks), `status/fetch` from PROCESSING_UPLOAD to PUBLISH_COMPLETE.
- Instagram (`/ig/v23.0`, rupload at `/rupload/v23.0`): the REELS container, the upload at `offset`
  with `file_size`, `status_code` IN_PROGRESS → FINISHED, `media_publish`, permalinks.

`hold_at` stops the server inside an upload body once that many bytes of it are stored (until
`release`), so a test can kill the client there; `cut_at` drops the connection there instead.
Every byte received, resends included, is counted in `received`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "client-123.apps.example"
CLIENT_SECRET = "client-secret-0123456789"
REFRESH_TOKEN = "refresh-token-0123456789"
TIKTOK_TOKEN = "act.tiktok-token-0123456789"
TIKTOK_CLIENT_KEY = "tiktok-client-key"
TIKTOK_CLIENT_SECRET = "tiktok-client-secret-0123456789"
TIKTOK_REFRESH = "rft.tiktok-refresh-0123456789"
INSTAGRAM_TOKEN = "EAAG-instagram-token-0123456789"
INSTAGRAM_USER = "17841400000000001"
PIECE = 16 * 1024


@dataclass
class Upload:
    """One upload session on the server: what it was told, the bytes it holds."""

    kind: str
    id: str
    total: int
    meta: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)
    chunk_size: int = 0
    chunk_count: int = 0
    finished: bool = False  # every byte stored
    polls: int = 0  # status polls since finishing
    published: str | None = None  # the public id once published


@dataclass
class Fault:
    """Answer the `n`th request matching `where` (a "METHOD /path" prefix) with `status` and `body`."""

    where: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class Platforms:
    def __init__(self) -> None:
        self.url = ""
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.uploads: dict[str, Upload] = {}
        self.received = 0  # upload bytes received, resends included
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path, headers, body (not uploads)
        self.thumbnails: dict[str, bytes] = {}  # YouTube video id -> the image set
        self.pieces: list[tuple[str, str]] = []  # (upload id, Content-Range or offset) of each upload request
        self.access_tokens: set[str] = set()
        self.refreshes = 0
        self.puts = 0
        self.expire_after_puts: int | None = None
        self.faults: list[Fault] = []
        self.hold_at: int | None = None  # bytes of the file stored
        self.holding = threading.Event()
        self.release = threading.Event()
        self.cut_at: int | None = None
        self.privacy_options = ["SELF_ONLY"]
        self.tiktok_tokens = {TIKTOK_TOKEN}
        self.tiktok_refresh = TIKTOK_REFRESH  # rotated at every refresh, as TikTok does
        self.max_duration = 600
        self.polls_to_finish = 2

    # --- what tests read -------------------------------------------------
    def videos(self, kind: str) -> list[Upload]:
        return [u for u in self.uploads.values() if u.kind == kind and u.published]

    def sessions(self, kind: str) -> list[Upload]:
        return [u for u in self.uploads.values() if u.kind == kind]

    def calls(self, prefix: str) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if f"{r[0]} {r[1]}".startswith(prefix)]

    def env(self) -> dict[str, str]:
        return {
            "STORYBOT_YOUTUBE_CLIENT_ID": CLIENT_ID,
            "STORYBOT_YOUTUBE_CLIENT_SECRET": CLIENT_SECRET,
            "STORYBOT_YOUTUBE_REFRESH_TOKEN": REFRESH_TOKEN,
            "STORYBOT_YOUTUBE_BASE_URL": f"{self.url}/yt",
            "STORYBOT_GOOGLE_TOKEN_URL": f"{self.url}/token",
            "STORYBOT_TIKTOK_ACCESS_TOKEN": TIKTOK_TOKEN,
            "STORYBOT_TIKTOK_BASE_URL": f"{self.url}/tt",
            "STORYBOT_INSTAGRAM_ACCESS_TOKEN": INSTAGRAM_TOKEN,
            "STORYBOT_INSTAGRAM_USER_ID": INSTAGRAM_USER,
            "STORYBOT_INSTAGRAM_BASE_URL": f"{self.url}/ig/v23.0",
            "STORYBOT_INSTAGRAM_UPLOAD_BASE_URL": f"{self.url}/rupload/v23.0",
            "STORYBOT_PUBLISH_CHUNK_BYTES": str(256 * 1024),
            "STORYBOT_PUBLISH_POLL_SECONDS": "0.05",
            "STORYBOT_PROVIDER_RETRIES": "3",
        }

    # --- the server ------------------------------------------------------
    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if f"{method} {path}".startswith(fault.where) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


def _google_error(status: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}


def _tiktok(data: dict[str, Any], code: str = "ok", message: str = "") -> dict[str, Any]:
    return {"data": data, "error": {"code": code, "message": message, "log_id": "log-0001"}}


@contextmanager
def platforms_server() -> Iterator[Platforms]:
    p = Platforms()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(
            self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _bearer(self, scheme: str = "Bearer") -> str:
            value = self.headers.get("Authorization", "")
            return value[len(scheme) + 1 :] if value.startswith(scheme + " ") else ""

        def _store(self, upload: Upload, offset: int, length: int) -> bool:
            """Read `length` body bytes into `upload` at `offset`, piece by piece; False when the
            connection was cut (by the client, or by `cut_at`) before the end."""
            left = length
            while left:
                at = offset + (length - left)
                if p.hold_at is not None and at >= p.hold_at:
                    p.hold_at = None
                    p.holding.set()
                    p.release.wait(30)
                    return False
                if p.cut_at is not None and at >= p.cut_at:
                    p.cut_at = None
                    self.close_connection = True
                    return False
                want = min(PIECE, left)
                if p.hold_at is not None:
                    want = min(want, max(1, p.hold_at - at))
                if p.cut_at is not None:
                    want = min(want, max(1, p.cut_at - at))
                piece = self.rfile.read(want)
                if not piece:
                    return False
                with p.lock:
                    p.received += len(piece)
                    del upload.data[at:]
                    upload.data += piece
                left -= len(piece)
            return True

        def _serve(self) -> None:
            split = urlsplit(self.path)
            path, query = split.path, parse_qs(split.query)
            fault = p.fault_for(self.command, path)
            if fault is not None:
                self._body()
                self._reply(fault.status, fault.body, fault.headers)
                return
            if path == "/token":
                return self._token()
            if path.startswith("/yt/"):
                return self._youtube(path, query)
            if path.startswith("/tt/"):
                return self._tiktok(path)
            if path.startswith(("/ig/", "/rupload/")):
                return self._instagram(path, query)
            self._reply(404, {"error": "not found"})

        do_GET = do_POST = do_PUT = _serve

        # --- Google ------------------------------------------------------
        def _token(self) -> None:
            body = self._body()
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            p.requests.append((self.command, self.path, dict(self.headers), body))
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self._reply(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            grant = form.get("grant_type")
            if grant == "refresh_token" and form.get("refresh_token") != REFRESH_TOKEN:
                return self._reply(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
            if grant == "authorization_code" and form.get("code") != "good-code":
                return self._reply(400, {"error": "invalid_grant", "error_description": "Bad code"})
            token = f"ya29.access-{next(p.ids)}"
            with p.lock:
                p.access_tokens.add(token)
                p.refreshes += 1
            answer = {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/youtube.upload",
            }
            if grant == "authorization_code":
                answer["refresh_token"] = REFRESH_TOKEN
            self._reply(200, answer)

        def _youtube(self, path: str, query: dict[str, list[str]]) -> None:
            if self._bearer() not in p.access_tokens:
                self._body()
                return self._reply(401, _google_error(401, "authError", "Invalid Credentials"))
            if self.command == "GET" and path == "/yt/youtube/v3/channels":
                return self._reply(200, {"items": [{"id": "UC-fake", "snippet": {"title": "Fake Channel"}}]})
            if self.command == "POST" and path == "/yt/upload/youtube/v3/thumbnails/set":
                p.thumbnails[query["videoId"][0]] = self._body()
                return self._reply(200, {"kind": "youtube#thumbnailSetResponse", "items": [{"default": {}}]})
            if self.command == "POST" and path == "/yt/upload/youtube/v3/videos":
                body = self._body()
                p.requests.append((self.command, self.path, dict(self.headers), body))
                if query.get("uploadType") != ["resumable"]:
                    return self._reply(400, _google_error(400, "badRequest", "uploadType"))
                sid = f"yt-session-{next(p.ids)}"
                total = int(self.headers["X-Upload-Content-Length"])
                p.uploads[sid] = Upload("youtube", sid, total, json.loads(body))
                return self._reply(
                    200, None, {"Location": f"{p.url}/yt/upload/youtube/v3/videos?uploadType=resumable&upload_id={sid}"}
                )
            if self.command == "PUT" and path == "/yt/upload/youtube/v3/videos":
                upload = p.uploads.get(query.get("upload_id", [""])[0])
                if upload is None:
                    self._body()
                    return self._reply(404, _google_error(404, "notFound", "no such session"))
                rng = self.headers.get("Content-Range", "")
                length = int(self.headers.get("Content-Length") or 0)
                if not rng.startswith("bytes */"):
                    start = int(rng.split(" ")[1].split("-")[0])
                    if start > len(upload.data):
                        self._body()
                        return self._reply(400, _google_error(400, "badContent", "gap in the upload"))
                    with p.lock:
                        p.puts += 1
                        if p.expire_after_puts is not None and p.puts >= p.expire_after_puts:
                            p.expire_after_puts = None
                            p.access_tokens.clear()
                    p.pieces.append((upload.id, rng))
                    if not self._store(upload, start, length):
                        self.close_connection = True
                        return
                else:
                    self._body()
                if len(upload.data) >= upload.total and upload.total:
                    if not upload.finished:
                        upload.finished = True
                        upload.published = f"vid{next(p.ids):08d}"
                    return self._reply(
                        201, {"kind": "youtube#video", "id": upload.published, "status": upload.meta.get("status", {})}
                    )
                headers = {"Range": f"bytes=0-{len(upload.data) - 1}"} if upload.data else {}
                return self._reply(308, None, headers)
            self._body()
            self._reply(404, _google_error(404, "notFound", path))

        # --- TikTok ------------------------------------------------------
        def _tiktok(self, path: str) -> None:
            if path.startswith("/tt/upload/"):
                return self._tiktok_put(path)
            body = self._body()
            p.requests.append((self.command, self.path, dict(self.headers), body))
            if path == "/tt/v2/oauth/token/":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if (form.get("client_key"), form.get("client_secret")) != (TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET):
                    return self._reply(401, {"error": "invalid_client", "error_description": "bad client"})
                if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != p.tiktok_refresh:
                    return self._reply(400, {"error": "invalid_grant", "error_description": "refresh token"})
                n = next(p.ids)
                access, p.tiktok_refresh = f"act.refreshed-{n}", f"rft.rotated-{n}"
                p.tiktok_tokens = {access}
                return self._reply(
                    200,
                    {
                        "access_token": access,
                        "expires_in": 86400,
                        "open_id": "open-1",
                        "refresh_token": p.tiktok_refresh,
                        "refresh_expires_in": 31536000,
                        "scope": "user.info.basic,video.publish",
                        "token_type": "Bearer",
                    },
                )
            if self._bearer() not in p.tiktok_tokens:
                return self._reply(401, _tiktok({}, "access_token_invalid", "The access token is invalid or not found"))
            if path == "/tt/v2/post/publish/creator_info/query/":
                return self._reply(
                    200,
                    _tiktok(
                        {
                            "creator_avatar_url": "https://example.invalid/a.jpg",
                            "creator_username": "fakecreator",
                            "creator_nickname": "Fake",
                            "privacy_level_options": p.privacy_options,
                            "comment_disabled": False,
                            "duet_disabled": True,
                            "stitch_disabled": False,
                            "max_video_post_duration_sec": p.max_duration,
                        }
                    ),
                )
            if path in ("/tt/v2/post/publish/video/init/", "/tt/v2/post/publish/inbox/video/init/"):
                req = json.loads(body)
                src = req["source_info"]
                size, chunk, count = src["video_size"], src["chunk_size"], src["total_chunk_count"]
                mb = 1024 * 1024
                ok = (size < 5 * mb and chunk == size and count == 1) or (
                    5 * mb <= chunk <= 64 * mb and count == size // chunk and size - chunk * (count - 1) <= 128 * mb
                )
                if not ok:
                    return self._reply(400, _tiktok({}, "invalid_params", "chunk rules"))
                privacy = req.get("post_info", {}).get("privacy_level")
                if "post_info" in req and privacy not in p.privacy_options:
                    return self._reply(
                        403,
                        _tiktok(
                            {},
                            "unaudited_client_can_only_post_to_private_accounts",
                            "unaudited clients post SELF_ONLY only",
                        ),
                    )
                pid = f"v_pub_file~v2-1.{next(p.ids)}"
                p.uploads[pid] = Upload("tiktok", pid, size, req, chunk_size=chunk, chunk_count=count)
                return self._reply(200, _tiktok({"publish_id": pid, "upload_url": f"{p.url}/tt/upload/{pid}"}))
            if path == "/tt/v2/post/publish/status/fetch/":
                upload = p.uploads.get(json.loads(body).get("publish_id", ""))
                if upload is None:
                    return self._reply(400, _tiktok({}, "invalid_publish_id", "no such publish_id"))
                data: dict[str, Any] = {"uploaded_bytes": len(upload.data)}
                if not upload.finished:
                    data["status"] = "PROCESSING_UPLOAD"
                elif upload.polls < p.polls_to_finish:
                    upload.polls += 1
                    data["status"] = "PROCESSING_DOWNLOAD"
                else:
                    inbox = "post_info" not in upload.meta
                    if upload.published is None:
                        upload.published = f"7{next(p.ids):018d}"
                    data["status"] = "SEND_TO_USER_INBOX" if inbox else "PUBLISH_COMPLETE"
                    public = upload.meta.get("post_info", {}).get("privacy_level") not in (None, "SELF_ONLY")
                    data["publicaly_available_post_id"] = [int(upload.published)] if public else []
                return self._reply(200, _tiktok(data))
            self._reply(404, _tiktok({}, "not_found", path))

        def _tiktok_put(self, path: str) -> None:
            upload = p.uploads.get(path.rsplit("/", 1)[1])
            length = int(self.headers.get("Content-Length") or 0)
            if upload is None or self.command != "PUT":
                self._body()
                return self._reply(404, _tiktok({}, "not_found", "upload url"))
            p.pieces.append((upload.id, self.headers.get("Content-Range", "")))
            first, last, total = _content_range(self.headers.get("Content-Range", ""))
            index = len(upload.data) // upload.chunk_size if upload.chunk_size else 0
            expected_first = index * upload.chunk_size
            expected_last = (
                upload.total - 1 if index == upload.chunk_count - 1 else expected_first + upload.chunk_size - 1
            )
            if (first, last, total) != (expected_first, expected_last, upload.total) or length != last - first + 1:
                self._body()
                return self._reply(
                    416, _tiktok({}, "invalid_range", f"expected bytes {expected_first}-{expected_last}")
                )
            if not self._store(upload, first, length):
                with p.lock:  # a chunk cut short is discarded: TikTok keeps whole chunks only
                    del upload.data[first:]
                self.close_connection = True
                return
            if len(upload.data) >= upload.total:
                upload.finished = True
                return self._reply(201, None)
            self._reply(206, None, {"Content-Range": f"bytes 0-{len(upload.data) - 1}/{upload.total}"})

        # --- Instagram ---------------------------------------------------
        def _instagram(self, path: str, query: dict[str, list[str]]) -> None:
            if path.startswith("/rupload/v23.0/"):
                return self._rupload(path)
            body = self._body()
            p.requests.append((self.command, self.path, dict(self.headers), body))
            if self._bearer() != INSTAGRAM_TOKEN:
                return self._reply(
                    400,
                    {
                        "error": {
                            "message": "Invalid OAuth access token.",
                            "type": "OAuthException",
                            "code": 190,
                            "fbtrace_id": "trace",
                        }
                    },
                )
            parts = path.split("/")[3:]  # after /ig/v23.0
            if self.command == "POST" and parts == [INSTAGRAM_USER, "media"]:
                req = json.loads(body)
                if req.get("media_type") != "REELS" or req.get("upload_type") != "resumable":
                    return self._reply(400, {"error": {"message": "bad container", "code": 100}})
                cid = f"1790{next(p.ids):08d}"
                p.uploads[cid] = Upload("instagram", cid, 0, req)
                return self._reply(200, {"id": cid, "uri": f"{p.url}/rupload/v23.0/{cid}"})
            if self.command == "POST" and parts == [INSTAGRAM_USER, "media_publish"]:
                upload = p.uploads.get(query.get("creation_id", [""])[0])
                if upload is None or not upload.finished or upload.polls < p.polls_to_finish:
                    return self._reply(
                        400, {"error": {"message": "Media ID is not available", "code": 9007, "error_subcode": 2207027}}
                    )
                if upload.published:
                    return self._reply(400, {"error": {"message": "already published", "code": 9007}})
                upload.published = f"1800{next(p.ids):08d}"
                return self._reply(200, {"id": upload.published})
            if self.command == "GET" and parts == [INSTAGRAM_USER]:
                return self._reply(200, {"id": INSTAGRAM_USER, "username": "fake.reels"})
            if self.command == "GET" and len(parts) == 1:
                for upload in p.uploads.values():
                    if upload.kind == "instagram" and upload.published == parts[0]:
                        return self._reply(
                            200, {"id": parts[0], "permalink": f"https://www.instagram.com/reel/R{parts[0]}/"}
                        )
                upload = p.uploads.get(parts[0])
                if upload is None:
                    return self._reply(400, {"error": {"message": "Unsupported get request", "code": 100}})
                if upload.published:
                    code = "PUBLISHED"
                elif not upload.finished:
                    code = "IN_PROGRESS"
                elif upload.polls < p.polls_to_finish:
                    upload.polls += 1
                    code = "IN_PROGRESS"
                else:
                    code = "FINISHED"
                phase = {
                    "status": "complete" if upload.finished else "in_progress",
                    "bytes_transferred": len(upload.data),
                }
                return self._reply(
                    200,
                    {"id": upload.id, "status_code": code, "status": code, "video_status": {"uploading_phase": phase}},
                )
            self._reply(400, {"error": {"message": f"Unknown path {path}", "code": 100}})

        def _rupload(self, path: str) -> None:
            upload = p.uploads.get(path.rsplit("/", 1)[1])
            length = int(self.headers.get("Content-Length") or 0)
            if upload is None or self._bearer("OAuth") != INSTAGRAM_TOKEN:
                self._body()
                return self._reply(400, {"error": {"message": "bad upload", "code": 190}})
            offset, size = int(self.headers["offset"]), int(self.headers["file_size"])
            p.pieces.append((upload.id, f"offset {offset}"))
            upload.total = size
            if offset != len(upload.data):
                self._body()
                return self._reply(400, {"debug_info": {"message": f"offset {offset} is not {len(upload.data)}"}})
            if not self._store(upload, offset, length):
                self.close_connection = True
                return
            if len(upload.data) >= size:
                upload.finished = True
            self._reply(200, {"success": True, "message": "Upload successful."})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    p.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield p
    finally:
        p.release.set()
        server.shutdown()
        server.server_close()


def _content_range(value: str) -> tuple[int, int, int]:
    span, total = value.removeprefix("bytes ").split("/")
    first, last = span.split("-")
    return int(first), int(last), int(total)
