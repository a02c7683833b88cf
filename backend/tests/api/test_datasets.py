"""Training datasets over HTTP: streamed uploads and their edge cases (size limit, traversal
names, wrong types, a client hanging up half-way), the validation report, visibility and
editing rights, preview, download, delete, and datasets made from chats and model tests."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import settings
from app.models import Dataset, User
from app.schemas.dataset import DatasetFields
from app.services import dataset_formats, dataset_service
from tests.api.test_chat_export import TURNS, make_prompt, make_session
from tests.api.test_model_tests import VALID as MODEL_TEST
from tests.api.test_model_tests import result as model_result
from tests.factories import asgi_chunked_post, auth_headers, free_port, make_user

BASE = "/api/training/datasets"
UPLOAD = f"{BASE}/upload"

ALPACA_ROWS = [
    {"instruction": "What is 2 + 2?", "input": "", "output": "4"},
    {"instruction": "Translate", "input": "bonjour", "output": "hello"},
    {"instruction": "Name a colour", "input": "", "output": "blue"},
]


def as_jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes | str = b"",
    name: str = "train.jsonl",
    **fields: str,
) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        UPLOAD,
        files={"file": (name, data or as_jsonl(ALPACA_ROWS), "application/octet-stream")},
        data=fields,
        headers=headers,
    )


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def datasets_root() -> Path:
    return settings.UPLOAD_DIR / "datasets"


def stored_files() -> list[str]:
    """Every file under UPLOAD_DIR/datasets, relative to it (temp files included)."""
    root = datasets_root()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def row_count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(Dataset)) or 0


@pytest.fixture(autouse=True)
def clean_datasets() -> Iterator[None]:
    """The upload folder is shared by the session; every test starts with it empty."""
    shutil.rmtree(datasets_root(), ignore_errors=True)
    yield
    shutil.rmtree(datasets_root(), ignore_errors=True)


# ------------------------------------------------------------------------------- 401


ENDPOINTS = [
    ("post", "/from-chat", {"session_ids": [1]}),
    ("post", "/from-tests", {"kind": "dpo"}),
    ("get", "/", None),
    ("get", "/{id}", None),
    ("get", "/{id}/preview", None),
    ("get", "/{id}/download", None),
    ("patch", "/{id}", {"name": "x"}),
    ("delete", "/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: Any
) -> None:
    dataset_id = created(upload(client, user_headers))["id"]
    response = client.request(method, BASE + path.format(id=dataset_id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_anonymous_upload_is_401_and_stores_nothing(client: TestClient, db: Session) -> None:
    response = client.post(UPLOAD, files={"file": ("a.jsonl", as_jsonl(ALPACA_ROWS))})
    assert response.status_code == 401
    assert stored_files() == [] and row_count(db) == 0


def test_pending_password_change_is_403(client: TestClient, db: Session) -> None:
    make_user(db, "dave@example.com", "dave", must_change_password=True)
    headers = auth_headers(client, "dave")
    for response in (client.get(BASE + "/", headers=headers), upload(client, headers)):
        assert response.status_code == 403
        assert response.json()["code"] == "password_change_required"
    assert stored_files() == []


# --------------------------------------------------------------------------- upload


def test_upload_validates_and_stores(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    content = as_jsonl(ALPACA_ROWS)
    body = created(
        upload(
            client,
            user_headers,
            content,
            "Math QA.jsonl",
            description="  three rows  ",
            is_shared="true",
        )
    )
    assert body["name"] == "Math QA"  # from the file name
    assert body["description"] == "three rows"
    assert body["is_shared"] is True
    assert body["owner"] == {"id": user.id, "nickname": "alice"}
    assert body["can_edit"] is True
    assert (body["file_name"], body["file_format"], body["source"]) == (
        "Math QA.jsonl",
        "jsonl",
        "upload",
    )
    assert (body["detected_format"], body["status"]) == ("alpaca", "ready")
    assert (body["rows"], body["valid_rows"], body["invalid_rows"]) == (3, 3, 0)
    assert body["errors"] == [] and body["error_count"] == 0
    assert body["size_bytes"] == len(content)
    assert body["stats"]["response"] == {"min": 1, "max": 5, "mean": 3.3, "p50": 4.0, "p95": 4.9}
    assert body["llamafactory"] == {
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }
    path = datasets_root() / str(body["id"]) / "Math QA.jsonl"
    assert path.read_bytes() == content
    assert stored_files() == [f"{body['id']}/Math QA.jsonl"]
    row = db.get(Dataset, body["id"])
    assert row is not None and row.owner_id == user.id and row.status == "ready"
    assert client.get(f"{BASE}/{body['id']}", headers=user_headers).json() == body
    entry = dataset_formats.dataset_info_entry(body["llamafactory"], "1.jsonl")
    assert entry["file_name"] == "1.jsonl" and entry["columns"]["prompt"] == "instruction"


def test_broken_rows_give_an_invalid_dataset_with_line_numbers(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    content = (
        as_jsonl(ALPACA_ROWS[:1])
        + b"\n"
        + b'{"instruction": "no answer"}\n'
        + b"{oops\n"
        + as_jsonl(ALPACA_ROWS[1:])
    )
    body = created(upload(client, user_headers, content, name="broken.jsonl"))
    assert (body["status"], body["detected_format"]) == ("invalid", "alpaca")
    assert (body["rows"], body["valid_rows"], body["invalid_rows"]) == (5, 3, 2)
    assert body["errors"] == [
        {"line": 3, "message": "'output' is missing"},
        {
            "line": 4,
            "message": "Invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        },
    ]
    assert body["llamafactory"] is None
    assert stored_files() == [f"{body['id']}/broken.jsonl"]


SHAREGPT = [
    {
        "conversations": [
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"},
        ],
        "system": "be kind",
    }
]
OPENAI = [
    {
        "messages": [
            {"role": "system", "content": "terse"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ]
    }
]


@pytest.mark.parametrize(
    ("name", "content", "detected", "rows"),
    [
        ("chats.json", json.dumps(SHAREGPT, indent=2), "sharegpt", 1),
        ("messages.jsonl", as_jsonl(OPENAI * 3), "openai", 3),
        ("pairs.csv", "prompt,chosen,rejected\nq,good,bad\nq2,yes,no\n", "preference", 2),
        ("alpaca.CSV", 'instruction,input,output\n"a,b",,c\n', "alpaca", 1),
        ("corpus.txt", "first document\n\nsecond document\n", "text", 2),
    ],
)
def test_every_format_is_detected(
    client: TestClient,
    user_headers: dict[str, str],
    name: str,
    content: str | bytes,
    detected: str,
    rows: int,
) -> None:
    body = created(upload(client, user_headers, content, name))
    assert (body["detected_format"], body["status"], body["rows"]) == (detected, "ready", rows)
    assert body["file_format"] == name.rsplit(".", 1)[1].lower()
    assert body["file_name"].endswith("." + body["file_format"])
    assert body["llamafactory"]["formatting"] in ("alpaca", "sharegpt")


@pytest.mark.parametrize(
    ("client_name", "stored"),
    [
        ("../../etc/passwd.jsonl", "passwd.jsonl"),
        ("..\\..\\windows\\evil.jsonl", "evil.jsonl"),
        ("/abs/path/.hidden.jsonl", "hidden.jsonl"),
        ("a<b>:c|d?.JSONL", "a b c d.jsonl"),
        ("....jsonl", "dataset.jsonl"),
        ("x" * 300 + ".jsonl", "x" * 114 + ".jsonl"),
    ],
)
def test_names_are_sanitised_and_stay_in_the_dataset_folder(
    client: TestClient, user_headers: dict[str, str], client_name: str, stored: str
) -> None:
    def everything() -> set[Path]:
        return {p.resolve() for p in settings.UPLOAD_DIR.parent.rglob("*") if p.is_file()}

    before = everything()
    body = created(upload(client, user_headers, name=client_name))
    assert body["file_name"] == stored
    assert stored_files() == [f"{body['id']}/{stored}"]
    # Nothing was written anywhere else, inside or outside UPLOAD_DIR.
    assert everything() - before == {(datasets_root() / str(body["id"]) / stored).resolve()}


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00", 415, "unsupported_dataset"),
        ("data.parquet", b"PAR1....", 415, "unsupported_dataset"),
        ("", b'{"text": "a"}\n', 415, "unsupported_dataset"),
        ("binary.jsonl", b'{"text": "a"}\n\x00\x01\x02\x03', 415, "unsupported_dataset"),
        ("utf16.txt", "hello\nworld\n".encode("utf-16"), 415, "unsupported_dataset"),
        ("empty.jsonl", b"\n\n  \n", 422, "empty_dataset"),
        ("empty.json", b"[]", 422, "empty_dataset"),
        ("scalar.json", b"42", 422, "empty_dataset"),
        ("header-only.csv", b"instruction,output\n", 422, "empty_dataset"),
    ],
)
def test_refused_files_leave_nothing(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    name: str,
    content: bytes,
    status: int,
    code: str,
) -> None:
    response = client.post(
        UPLOAD, files={"file": (name, content, "application/octet-stream")}, headers=user_headers
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert stored_files() == []
    assert row_count(db) == 0


def test_oversized_upload_is_413_and_leaves_nothing(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "DATASET_MAX_BYTES", 4096)
    small = as_jsonl(ALPACA_ROWS)
    assert upload(client, user_headers, small).status_code == 201
    big = as_jsonl(ALPACA_ROWS * 100)
    assert len(big) > 4096
    response = upload(client, user_headers, big)
    assert response.status_code == 413
    assert response.json()["code"] == "dataset_too_large"
    assert len(stored_files()) == 1 and row_count(db) == 1


def _multipart(data: bytes, name: str = "a.jsonl", boundary: str = "xYzBoundary") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


CONTENT_TYPE = "multipart/form-data; boundary=xYzBoundary"


def test_lying_content_length_does_not_pass_the_limit(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "DATASET_MAX_BYTES", 4096)
    response = client.post(
        UPLOAD,
        content=_multipart(as_jsonl(ALPACA_ROWS * 100)),
        headers={**user_headers, "Content-Type": CONTENT_TYPE, "Content-Length": "100"},
    )
    assert response.status_code == 413
    assert stored_files() == [] and row_count(db) == 0


def test_the_upload_is_exempt_from_the_json_body_limit(
    client: TestClient, user_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = as_jsonl(ALPACA_ROWS * 12_000)
    assert len(content) > settings.MAX_JSON_BODY_BYTES
    body = created(upload(client, user_headers, content))
    assert body["rows"] == 36_000 and body["status"] == "ready"


def test_streamed_upload_stops_reading_as_soon_as_the_limit_is_passed(
    app: FastAPI, user_headers: dict[str, str], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "DATASET_MAX_BYTES", 4096)
    body = _multipart(as_jsonl(ALPACA_ROWS * 2000))
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
    status, payload, pulled = asgi_chunked_post(
        app, UPLOAD, user_headers["Authorization"], chunks, CONTENT_TYPE
    )
    assert status == 413 and payload["code"] == "dataset_too_large"
    assert pulled <= 6, f"read {pulled} of {len(chunks)} chunks"
    assert stored_files() == [] and row_count(db) == 0


def test_wrong_type_is_refused_before_the_data_is_read(
    app: FastAPI, user_headers: dict[str, str], db: Session
) -> None:
    body = _multipart(b"\x00" * 200_000, name="setup.exe")
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
    status, payload, pulled = asgi_chunked_post(
        app, UPLOAD, user_headers["Authorization"], chunks, CONTENT_TYPE
    )
    assert status == 415 and payload["code"] == "unsupported_dataset"
    assert pulled == 1
    assert stored_files() == [] and row_count(db) == 0


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"json": {"file": "aGVsbG8="}}, ["body", "file"]),
        ({"files": {"data": ("a.jsonl", b'{"text": "a"}\n')}}, ["body", "file"]),
        (
            {"files": {"file": ("a.jsonl", b'{"text": "a"}\n')}, "data": {"name": "x" * 101}},
            ["body", "name"],
        ),
        (
            {"files": {"file": ("a.jsonl", b'{"text": "a"}\n')}, "data": {"name": "   "}},
            ["body", "name"],
        ),
        (
            {"files": {"file": ("a.jsonl", b'{"text": "a"}\n')}, "data": {"is_shared": "maybe"}},
            ["body", "is_shared"],
        ),
    ],
    ids=["json", "wrong-field", "long-name", "blank-name", "bad-flag"],
)
def test_invalid_upload_is_422_and_leaves_nothing(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    kwargs: dict[str, Any],
    loc: list[str],
) -> None:
    response = client.post(UPLOAD, headers=user_headers, **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert stored_files() == [] and row_count(db) == 0


def test_cut_multipart_body_is_422(client: TestClient, user_headers: dict[str, str]) -> None:
    body = _multipart(as_jsonl(ALPACA_ROWS))
    response = client.post(
        UPLOAD,
        content=body[: len(body) - 30],
        headers={**user_headers, "Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 422
    assert stored_files() == []


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[tuple[str, int]]:
    """The same app served by uvicorn on 127.0.0.1, so that a client can really hang up."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_interrupted_upload_leaves_no_file_and_no_row(
    live_server: tuple[str, int], user_headers: dict[str, str], db: Session
) -> None:
    host, port = live_server
    head = (
        b'--xYzBoundary\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    data = as_jsonl(ALPACA_ROWS * 2000)
    request = (
        f"POST {UPLOAD} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {user_headers['Authorization']}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(head) + len(data) * 10}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request + head + data)
        # The server is writing the upload to a temporary file...
        assert _wait_for(lambda: stored_files() != [] and stored_files()[0].startswith(".upload-"))
    # ...and the client is gone before the body is complete.
    assert _wait_for(lambda: stored_files() == []), stored_files()
    assert row_count(db) == 0


# ------------------------------------------------------------------------ visibility


@pytest.fixture
def three_datasets(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> dict[str, int]:
    carol = auth_headers(client, "carol")
    return {
        "mine": created(upload(client, user_headers, name="mine.jsonl"))["id"],
        "shared": created(upload(client, carol, name="shared.jsonl", is_shared="true"))["id"],
        "private": created(upload(client, carol, name="private.jsonl"))["id"],
    }


def test_list_shows_own_and_shared(
    client: TestClient,
    user_headers: dict[str, str],
    admin_headers: dict[str, str],
    three_datasets: dict[str, int],
) -> None:
    def names(headers: dict[str, str], **params: Any) -> list[str]:
        response = client.get(BASE + "/", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["items"])
        assert all("errors" not in item for item in page["items"])
        return sorted(item["name"] for item in page["items"])

    assert names(user_headers) == ["mine", "shared"]
    assert names(user_headers, scope="mine") == ["mine"]
    assert names(user_headers, scope="shared") == ["shared"]
    assert names(user_headers, q="SHA") == ["shared"]
    assert names(user_headers, q="%") == []
    assert names(user_headers, status="invalid") == []
    assert names(user_headers, detected_format="alpaca") == ["mine", "shared"]
    assert names(user_headers, detected_format="text") == []
    assert names(admin_headers) == ["mine", "private", "shared"]
    items = client.get(BASE + "/", headers=user_headers).json()["items"]
    assert {item["name"]: item["can_edit"] for item in items} == {"mine": True, "shared": False}


def test_list_pages(client: TestClient, user_headers: dict[str, str]) -> None:
    ids = [created(upload(client, user_headers, name=f"d{i}.jsonl"))["id"] for i in range(3)]
    page = client.get(BASE + "/", params={"page": 2, "size": 2}, headers=user_headers).json()
    assert page["total"] == 3 and (page["page"], page["size"]) == (2, 2)
    assert [item["id"] for item in page["items"]] == [ids[0]]  # newest first


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/{id}", None),
        ("get", "/{id}/preview", None),
        ("get", "/{id}/download", None),
        ("patch", "/{id}", {"name": "stolen"}),
        ("delete", "/{id}", None),
    ],
)
def test_others_private_dataset_is_404(
    client: TestClient,
    user_headers: dict[str, str],
    three_datasets: dict[str, int],
    method: str,
    path: str,
    body: Any,
) -> None:
    private = three_datasets["private"]
    response = client.request(
        method, BASE + path.format(id=private), json=body, headers=user_headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "dataset_not_found"
    assert f"{private}/private.jsonl" in stored_files()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/{id}", None),
        ("get", "/{id}/preview", None),
        ("get", "/{id}/download", None),
        ("patch", "/{id}", {"name": "x"}),
        ("delete", "/{id}", None),
    ],
)
def test_unknown_dataset_is_404(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: Any
) -> None:
    response = client.request(
        method, BASE + path.format(id=999_999), json=body, headers=user_headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "dataset_not_found"


def test_shared_dataset_is_readable_but_not_changeable(
    client: TestClient, user_headers: dict[str, str], three_datasets: dict[str, int]
) -> None:
    shared = three_datasets["shared"]
    assert client.get(f"{BASE}/{shared}", headers=user_headers).json()["can_edit"] is False
    assert client.get(f"{BASE}/{shared}/preview", headers=user_headers).status_code == 200
    assert client.get(f"{BASE}/{shared}/download", headers=user_headers).status_code == 200
    for method, body in (("patch", {"name": "mine now"}), ("delete", None)):
        response = client.request(method, f"{BASE}/{shared}", json=body, headers=user_headers)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert f"{shared}/shared.jsonl" in stored_files()


def test_admin_may_change_and_delete_any_dataset(
    client: TestClient, admin_headers: dict[str, str], three_datasets: dict[str, int]
) -> None:
    private = three_datasets["private"]
    response = client.patch(f"{BASE}/{private}", json={"name": "moderated"}, headers=admin_headers)
    assert response.status_code == 200 and response.json()["can_edit"] is True
    assert client.delete(f"{BASE}/{private}", headers=admin_headers).status_code == 204
    assert not any(name.startswith(f"{private}/") for name in stored_files())


# ---------------------------------------------------------------------- invalid (422)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/abc", None),
        ("get", "/?size=0", None),
        ("get", "/?size=101", None),
        ("get", "/?scope=everything", None),
        ("get", "/?status=validating", None),
        ("get", "/?detected_format=parquet", None),
        ("get", "/{id}/preview?limit=0", None),
        ("get", "/{id}/preview?limit=101", None),
        ("get", "/{id}/preview?offset=-1", None),
        ("patch", "/{id}", {"name": None}),
        ("patch", "/{id}", {"name": ""}),
        ("patch", "/{id}", {"description": "x" * 2001}),
        ("patch", "/{id}", {"is_shared": None}),
        ("post", "/from-chat", {"session_ids": []}),
        ("post", "/from-chat", {}),
        ("post", "/from-tests", {"kind": "kto"}),
        ("post", "/from-tests", {"test_ids": []}),
    ],
)
def test_invalid_input_is_422(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: Any
) -> None:
    dataset_id = created(upload(client, user_headers))["id"]
    response = client.request(
        method, BASE + path.format(id=dataset_id), json=body, headers=user_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


# --------------------------------------------------------------- preview / download / edit


def test_preview_pages_through_the_records(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    rows = [{"text": f"document {i}"} for i in range(5)]
    content = as_jsonl(rows[:2]) + b"not json\n" + as_jsonl(rows[2:])
    dataset = created(upload(client, user_headers, content))
    url = f"{BASE}/{dataset['id']}/preview"
    first = client.get(url, params={"limit": 2}, headers=user_headers).json()
    assert first == {
        "items": [
            {"line": 1, "record": {"text": "document 0"}, "error": None},
            {"line": 2, "record": {"text": "document 1"}, "error": None},
        ],
        "offset": 0,
        "limit": 2,
        "has_more": True,
        "rows": 6,
    }
    second = client.get(url, params={"offset": 2, "limit": 2}, headers=user_headers).json()
    assert [(i["line"], i["error"] is not None) for i in second["items"]] == [(3, True), (4, False)]
    assert second["items"][0]["error"].startswith("Invalid JSON")
    last = client.get(url, params={"offset": 4, "limit": 20}, headers=user_headers).json()
    assert [i["line"] for i in last["items"]] == [5, 6] and last["has_more"] is False
    beyond = client.get(url, params={"offset": 50}, headers=user_headers).json()
    assert beyond["items"] == [] and beyond["has_more"] is False


def test_download_returns_the_file(client: TestClient, user_headers: dict[str, str]) -> None:
    content = "prompt,chosen,rejected\nq,été,hiver\n".encode()
    dataset = created(upload(client, user_headers, content, "Préférences.csv"))
    response = client.get(f"{BASE}/{dataset['id']}/download", headers=user_headers)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Préférences.csv"


def test_missing_file_is_404(client: TestClient, user_headers: dict[str, str]) -> None:
    dataset = created(upload(client, user_headers))
    (datasets_root() / str(dataset["id"]) / dataset["file_name"]).unlink()
    for suffix in ("/preview", "/download"):
        response = client.get(f"{BASE}/{dataset['id']}{suffix}", headers=user_headers)
        assert response.status_code == 404 and response.json()["code"] == "dataset_not_found"


def test_patch_changes_only_what_is_sent(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> None:
    dataset = created(upload(client, user_headers, description="first"))
    url = f"{BASE}/{dataset['id']}"
    response = client.patch(url, json={"name": "  Renamed  "}, headers=user_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["is_shared"]) == ("Renamed", "first", False)
    assert body["updated_at"] >= dataset["updated_at"]
    carol = auth_headers(client, "carol")
    assert client.get(url, headers=carol).status_code == 404
    client.patch(url, json={"is_shared": True, "description": ""}, headers=user_headers)
    shared = client.get(url, headers=carol).json()
    assert (shared["name"], shared["description"], shared["is_shared"]) == ("Renamed", "", True)


def test_delete_removes_row_and_folder(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    keep = created(upload(client, user_headers, name="keep.jsonl"))
    gone = created(upload(client, user_headers, name="gone.jsonl"))
    assert client.delete(f"{BASE}/{gone['id']}", headers=user_headers).status_code == 204
    assert stored_files() == [f"{keep['id']}/keep.jsonl"]
    assert not (datasets_root() / str(gone["id"])).exists()
    assert row_count(db) == 1
    assert client.get(f"{BASE}/{gone['id']}", headers=user_headers).status_code == 404


def test_delete_is_409_while_a_running_job_uses_the_dataset(
    client: TestClient, user_headers: dict[str, str], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = created(upload(client, user_headers))
    asked: list[int] = []

    def running(_db: Session, dataset_id: int) -> int:
        asked.append(dataset_id)
        return 1

    monkeypatch.setattr(dataset_service, "_running_jobs_using", running)
    response = client.delete(f"{BASE}/{dataset['id']}", headers=user_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_in_use"
    assert asked == [dataset["id"]]
    assert row_count(db) == 1 and len(stored_files()) == 1


def test_rolled_back_store_removes_the_folder(db: Session, user: User) -> None:
    root = datasets_root()
    root.mkdir(parents=True, exist_ok=True)
    staged = root / ".upload-test"
    staged.write_bytes(as_jsonl(ALPACA_ROWS))
    result = dataset_formats.validate_file(staged, "jsonl")
    detail = dataset_service._store(
        db,
        user,
        staged=staged,
        file_name="a.jsonl",
        fields=DatasetFields(),
        result=result,
        source="upload",
    )
    assert stored_files() == [f"{detail.id}/a.jsonl"]
    db.rollback()
    assert stored_files() == []
    assert not (root / str(detail.id)).exists()


def test_rolled_back_delete_keeps_the_folder(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    dataset = created(upload(client, user_headers))
    dataset_service.delete_dataset(db, user, dataset["id"])
    db.rollback()
    assert stored_files() == [f"{dataset['id']}/train.jsonl"]
    dataset_service.delete_dataset(db, user, dataset["id"])
    db.commit()
    assert stored_files() == []


# ----------------------------------------------------------------- from chats and tests


def test_from_chat_makes_a_sharegpt_dataset(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    prompt = make_prompt(db, user)
    first = make_session(db, user, TURNS, title="Capitals", system_prompt=prompt)
    second = make_session(db, user, [("user", "Hi"), ("assistant", "Hello!")], title="Greeting")
    response = client.post(
        f"{BASE}/from-chat",
        json={"session_ids": [first.id, second.id], "name": "From chats", "is_shared": True},
        headers=user_headers,
    )
    body = created(response)
    assert (body["source"], body["file_format"], body["name"]) == ("chat", "json", "From chats")
    assert (body["detected_format"], body["status"], body["rows"]) == ("sharegpt", "ready", 2)
    assert body["is_shared"] is True
    assert body["llamafactory"] == {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system"},
    }
    path = datasets_root() / str(body["id"]) / body["file_name"]
    entries = json.loads(path.read_text(encoding="utf-8"))
    assert entries[0]["system"] == "You are terse."
    assert [t["value"] for t in entries[0]["conversations"]] == [
        "What is the capital of France?",
        "Paris.",
        "And of Italy, please?",
        "Rome.",
    ]
    assert entries[1]["conversations"][1] == {"from": "gpt", "value": "Hello!"}


def test_from_chat_refuses_foreign_and_unanswered_chats(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User, other_user: User
) -> None:
    theirs = make_session(db, other_user, TURNS)
    mine = make_session(db, user, TURNS)
    response = client.post(
        f"{BASE}/from-chat", json={"session_ids": [mine.id, theirs.id]}, headers=user_headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "chat_session_not_found"
    unanswered = make_session(db, user, [("user", "Anyone there?")])
    response = client.post(
        f"{BASE}/from-chat", json={"session_ids": [unanswered.id]}, headers=user_headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "empty_dataset"
    assert stored_files() == [] and row_count(db) == 0


def _save_test(client: TestClient, headers: dict[str, str], **changes: Any) -> int:
    response = client.post("/api/model/tests", json={**MODEL_TEST, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    test_id: int = response.json()["id"]
    return test_id


def test_from_tests_makes_preference_and_sft_datasets(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    first = _save_test(client, user_headers)
    _save_test(
        client,
        user_headers,
        prompt="Largest planet?",
        results=[
            model_result("Jupiter.", name="a"),
            model_result("Saturn.", name="b"),
            model_result("Mars.", name="c"),
        ],
    )
    dpo = created(client.post(f"{BASE}/from-tests", json={}, headers=user_headers))
    assert (dpo["source"], dpo["file_format"]) == ("tests", "jsonl")
    assert (dpo["detected_format"], dpo["status"], dpo["rows"]) == ("preference", "ready", 3)
    assert dpo["name"].startswith("model-tests-dpo-")
    assert dpo["llamafactory"] == {
        "formatting": "alpaca",
        "ranking": True,
        "columns": {
            "prompt": "prompt",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
        },
    }
    sft = created(
        client.post(
            f"{BASE}/from-tests",
            json={"kind": "sft", "test_ids": [first], "name": "Winners"},
            headers=user_headers,
        )
    )
    assert (sft["detected_format"], sft["status"], sft["rows"], sft["name"]) == (
        "alpaca",
        "ready",
        1,
        "Winners",
    )
    preview = client.get(f"{BASE}/{sft['id']}/preview", headers=user_headers).json()
    assert preview["items"][0]["record"]["output"] == "Paris."


def test_from_tests_refuses_foreign_tests_and_empty_results(
    client: TestClient, user_headers: dict[str, str], other_user: User, db: Session
) -> None:
    carol = auth_headers(client, "carol")
    theirs = _save_test(client, carol)
    response = client.post(f"{BASE}/from-tests", json={"test_ids": [theirs]}, headers=user_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "model_test_not_found"
    response = client.post(f"{BASE}/from-tests", json={"kind": "dpo"}, headers=user_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "empty_dataset"
    no_winner = _save_test(client, user_headers, winner_index=None)
    response = client.post(
        f"{BASE}/from-tests", json={"test_ids": [no_winner]}, headers=user_headers
    )
    assert response.status_code == 422 and "preference pairs" in response.json()["detail"]
    assert stored_files() == [] and row_count(db) == 0


def test_files_of_a_deleted_owner_are_removed(
    client: TestClient, user_headers: dict[str, str], other_user: User, db: Session, user: User
) -> None:
    carol = auth_headers(client, "carol")
    mine = created(upload(client, user_headers, name="mine.jsonl"))
    created(upload(client, carol, name="hers.jsonl"))
    dataset_service.remove_files_of_owner(db, user.id)
    db.delete(db.get(User, user.id))
    db.commit()
    assert row_count(db) == 1
    assert [name.split("/")[1] for name in stored_files()] == ["hers.jsonl"]
    assert not (datasets_root() / str(mine["id"])).exists()


def test_a_kto_dataset_is_stored_counted_and_found_by_format(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    rows = [{**row, "kto_tag": n != 1} for n, row in enumerate(ALPACA_ROWS)]
    body = created(upload(client, user_headers, as_jsonl(rows), "kto.jsonl"))
    assert (body["detected_format"], body["status"]) == ("kto", "ready")
    detail = client.get(f"{BASE}/{body['id']}", headers=user_headers).json()
    assert detail["stats"]["labels"] == {
        "desirable": len(ALPACA_ROWS) - 1,
        "undesirable": 1,
    }
    assert detail["llamafactory"]["columns"]["kto_tag"] == "kto_tag"
    created(upload(client, user_headers))
    found = client.get(f"{BASE}/?detected_format=kto", headers=user_headers).json()
    assert [item["id"] for item in found["items"]] == [body["id"]]
    # A flag that is not a JSON boolean would be trained as plain SFT: the file is invalid.
    quoted = [{**row, "kto_tag": "true"} for row in ALPACA_ROWS]
    refused = created(upload(client, user_headers, as_jsonl(quoted), "q.jsonl"))
    assert (refused["detected_format"], refused["status"]) == ("kto", "invalid")
    plain = client.get(f"{BASE}/{refused['id']}", headers=user_headers).json()
    assert plain["stats"]["labels"] == {"desirable": 0, "undesirable": 0}
    assert plain["llamafactory"] is None
