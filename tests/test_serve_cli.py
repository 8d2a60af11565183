"""`storybot tokens` and `storybot serve` as a user runs them: child processes, real HTTP, signals."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli import ok_json, storybot, storybot_json


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tokens_are_shown_once_stored_hashed_and_revoked(tmp_path: Path) -> None:
    made = storybot_json("tokens", "create", "n8n", data=tmp_path)
    assert set(made) == {"name", "token", "webhook_secret"} and made["name"] == "n8n"
    assert made["token"].startswith("sbt_") and made["webhook_secret"].startswith("whsec_")
    plain = storybot("tokens", "create", "ci", "--admin", data=tmp_path)
    assert plain.returncode == 0 and plain.stdout.strip().startswith("sbt_") and "shown once" in plain.stderr
    db = tmp_path / "service.sqlite"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    stored = sqlite3.connect(db).execute("SELECT hash FROM tokens").fetchall()
    assert all(made["token"] not in row[0] for row in stored) and len(stored) == 2  # only hashes
    listed = storybot_json("tokens", "list", data=tmp_path)
    assert [(t["name"], t["admin"]) for t in listed] == [("ci", True), ("n8n", False)]
    assert made["token"] not in storybot("tokens", "list", data=tmp_path).stdout
    again = storybot("tokens", "create", "n8n", data=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "exists" in again.stderr
    bad = storybot("tokens", "create", "../x", data=tmp_path)
    assert bad.returncode == 2 and "not usable" in bad.stderr
    assert storybot("tokens", "revoke", "n8n", data=tmp_path).returncode == 0
    assert [t["name"] for t in ok_json(storybot("tokens", "list", "--json", data=tmp_path))] == ["ci"]
    gone = storybot("tokens", "revoke", "n8n", data=tmp_path)
    assert gone.returncode == 2 and "no token named 'n8n'" in gone.stderr


def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    token = storybot_json("tokens", "create", "alice", data=tmp_path)["token"]
    port = free_port()
    env = {**os.environ, "STORYBOT_DATA_DIR": str(tmp_path), "STORYBOT_HTTP_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "storybot", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr and server.stderr.read()
                time.sleep(0.1)
        reply = httpx.post(
            f"{base}/v1/jobs", json={"prompt": "a fox", "duration": 999}, headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status_code == 422 and reply.json()["field"] == "duration"
        assert httpx.get(f"{base}/v1/jobs").status_code == 401
        # a second server on the same port: one clear line, exit 1
        clash = storybot("serve", env={"STORYBOT_HTTP_PORT": str(port)}, data=tmp_path, timeout=60)
        assert clash.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in clash.stderr
        assert "Traceback" not in clash.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 130 and "Traceback" not in err, err
