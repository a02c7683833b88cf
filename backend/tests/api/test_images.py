"""Image upload: content checks with real images made by Pillow, the streamed size limit, files
confined to UPLOAD_DIR/images and never left behind, owner-only reads, data URLs."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import settings
from app.exceptions import NotFound
from app.models import UploadedImage, User
from app.services import image_service
from tests.factories import asgi_chunked_post, auth_headers

UPLOAD = "/api/model/upload-image"
IMAGES = "/api/model/images"


def make_image(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    """A real image in `fmt`, with some texture so it does not compress to nothing."""
    image = Image.new(mode, size)
    width, height = size
    image.putdata(
        [
            ((x * 7) % 256, (y * 13) % 256, (x * y) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def noise_png(nbytes: int) -> bytes:
    """A valid PNG of at least `nbytes` (random pixels do not compress)."""
    side = int((nbytes / 3) ** 0.5) + 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def upload(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    name: str = "picture.png",
    content_type: str = "image/png",
) -> Any:
    return client.post(UPLOAD, files={"file": (name, data, content_type)}, headers=headers)


def stored_files() -> list[str]:
    folder = settings.UPLOAD_DIR / "images"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def all_files_under_uploads() -> list[Path]:
    return [p for p in settings.UPLOAD_DIR.rglob("*") if p.is_file()]


def row_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(UploadedImage)) or 0


@pytest.fixture(autouse=True)
def clean_images() -> None:
    """The upload folder is shared by the session; every test starts with it empty."""
    folder = settings.UPLOAD_DIR / "images"
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()


# ------------------------------------------------------------------------------- 401


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", UPLOAD), ("get", IMAGES + "/{id}"), ("delete", IMAGES + "/{id}")],
)
def test_anonymous_is_401(
    client: TestClient, user_headers: dict[str, str], method: str, path: str
) -> None:
    image_id = upload(client, user_headers, make_image("PNG")).json()["id"]
    files = {"file": ("a.png", make_image("PNG"), "image/png")} if method == "post" else None
    response = client.request(method, path.format(id=image_id), files=files)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert len(stored_files()) == 1


# ------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_real_images_are_accepted_and_served_to_the_owner(
    client: TestClient, user_headers: dict[str, str], db: Session, fmt: str, mime: str
) -> None:
    data = make_image(fmt, (40, 30))
    # Name and declared type say nothing true: the content decides.
    response = upload(client, user_headers, data, name="whatever.txt", content_type="text/plain")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "mime_type", "size_bytes", "width", "height", "url"}
    assert len(body["id"]) == 32 and int(body["id"], 16) >= 0
    assert body["mime_type"] == mime
    assert (body["width"], body["height"]) == (40, 30)
    assert body["size_bytes"] == len(data)
    assert body["url"] == f"{IMAGES}/{body['id']}"
    assert stored_files() == [body["id"]]
    assert (settings.UPLOAD_DIR / "images" / body["id"]).read_bytes() == data
    row = db.get(UploadedImage, body["id"])
    assert row is not None and row.original_name == "whatever.txt"

    served = client.get(body["url"], headers=user_headers)
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == mime
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline")


def test_path_in_the_file_name_never_becomes_a_path(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    response = upload(client, user_headers, make_image("PNG"), name="../../../etc/evil.png")
    assert response.status_code == 201, response.text
    image_id = response.json()["id"]
    assert [p.relative_to(settings.UPLOAD_DIR).as_posix() for p in all_files_under_uploads()] == [
        f"images/{image_id}"
    ]
    row = db.get(UploadedImage, image_id)
    assert row is not None and row.original_name == "evil.png"


# ------------------------------------------------------------------------- refused


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _truncated_jpeg() -> bytes:
    data = make_image("JPEG", (64, 64))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"just some text, not an image\n" * 10, "notes.png"),
        (make_image("BMP"), "picture.png"),
        (make_image("TIFF"), "picture.png"),
        (_pdf(), "document.png"),
        (b"", "empty.png"),
        (_truncated_jpeg(), "cut.jpg"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.png"),
    ],
    ids=["text", "bmp", "tiff", "pdf", "empty", "truncated-jpeg", "svg"],
)
def test_non_images_and_other_types_are_415_and_leave_nothing(
    client: TestClient, user_headers: dict[str, str], db: Session, data: bytes, name: str
) -> None:
    response = upload(client, user_headers, data, name=name)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_image"
    assert all_files_under_uploads() == []
    assert row_count(db) == 0


def test_oversized_upload_is_413_and_leaves_nothing(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "IMAGE_MAX_BYTES", 4096)
    small = make_image("PNG", (8, 8))
    assert upload(client, user_headers, small).status_code == 201
    big = noise_png(6000)
    response = upload(client, user_headers, big)
    assert response.status_code == 413
    assert response.json()["code"] == "image_too_large"
    assert len(all_files_under_uploads()) == 1
    assert row_count(db) == 1


def _multipart(data: bytes, boundary: str = "xYzBoundary") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_lying_content_length_does_not_pass_the_limit(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "IMAGE_MAX_BYTES", 4096)
    body, content_type = _multipart(noise_png(6000))
    response = client.post(
        UPLOAD,
        content=body,
        headers={**user_headers, "Content-Type": content_type, "Content-Length": "100"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "image_too_large"
    assert all_files_under_uploads() == []
    assert row_count(db) == 0


def test_declared_oversized_body_is_refused_before_reading(
    client: TestClient, user_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "IMAGE_MAX_BYTES", 4096)
    body, content_type = _multipart(b"x" * 100_000)
    response = client.post(
        UPLOAD, content=body, headers={**user_headers, "Content-Type": content_type}
    )
    assert response.status_code == 413
    assert all_files_under_uploads() == []


def test_streamed_upload_stops_reading_as_soon_as_the_limit_is_passed(
    app: FastAPI,
    user_headers: dict[str, str],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "IMAGE_MAX_BYTES", 4096)
    body, content_type = _multipart(b"\x89PNG" + b"\0" * 200_000)
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
    status, payload, pulled = asgi_chunked_post(
        app, UPLOAD, user_headers["Authorization"], chunks, content_type
    )
    assert status == 413 and payload["code"] == "image_too_large"
    assert pulled <= 6, f"read {pulled} of {len(chunks)} chunks"
    assert all_files_under_uploads() == []
    assert row_count(db) == 0


def test_streamed_upload_within_the_limit_is_stored(
    app: FastAPI, user_headers: dict[str, str], db: Session
) -> None:
    data = make_image("PNG", (64, 64))
    body, content_type = _multipart(data)
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
    status, payload, pulled = asgi_chunked_post(
        app, UPLOAD, user_headers["Authorization"], chunks, content_type
    )
    assert status == 201, payload
    assert pulled == len(chunks)
    assert (settings.UPLOAD_DIR / "images" / payload["id"]).read_bytes() == data


def test_decompression_bomb_is_413(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    out = io.BytesIO()
    # 8000 x 8000 one-bit pixels: a few kilobytes on disk, 64 megapixels decoded.
    Image.new("1", (8000, 8000)).save(out, format="PNG")
    assert len(out.getvalue()) < settings.IMAGE_MAX_BYTES
    response = upload(client, user_headers, out.getvalue())
    assert response.status_code == 413
    assert response.json()["code"] == "image_too_large"
    assert all_files_under_uploads() == []
    assert row_count(db) == 0


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"json": {"file": "aGVsbG8="}}, ["body", "file"]),
        ({"files": {"picture": ("a.png", make_image("PNG"), "image/png")}}, ["body", "file"]),
        ({"data": {"file": "not a file"}}, ["body", "file"]),
    ],
    ids=["json", "wrong-field", "form-without-file"],
)
def test_missing_file_is_422(
    client: TestClient, user_headers: dict[str, str], kwargs: dict[str, Any], loc: list[str]
) -> None:
    response = client.post(UPLOAD, headers=user_headers, **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert all_files_under_uploads() == []


def test_two_files_are_422(client: TestClient, user_headers: dict[str, str], db: Session) -> None:
    png = make_image("PNG")
    response = client.post(
        UPLOAD,
        files=[("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))],
        headers=user_headers,
    )
    assert response.status_code == 422
    assert all_files_under_uploads() == []
    assert row_count(db) == 0


def test_malformed_multipart_is_422(client: TestClient, user_headers: dict[str, str]) -> None:
    body, content_type = _multipart(make_image("PNG"))
    cut = body[: len(body) - 30]  # the closing boundary never arrives
    response = client.post(
        UPLOAD, content=cut, headers={**user_headers, "Content-Type": content_type}
    )
    assert response.status_code == 422
    assert all_files_under_uploads() == []


# -------------------------------------------------------------------- owner / delete


@pytest.mark.parametrize("method", ["get", "delete"])
def test_other_users_image_is_404(
    client: TestClient, user_headers: dict[str, str], other_user: User, method: str
) -> None:
    image_id = upload(client, user_headers, make_image("PNG")).json()["id"]
    carol = auth_headers(client, "carol")
    response = client.request(method, f"{IMAGES}/{image_id}", headers=carol)
    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"
    assert stored_files() == [image_id]


@pytest.mark.parametrize("image_id", ["0" * 32, "..%2F..%2Fsecret_key", "ABC", "f" * 33])
@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_image_is_404(
    client: TestClient, user_headers: dict[str, str], method: str, image_id: str
) -> None:
    response = client.request(method, f"{IMAGES}/{image_id}", headers=user_headers)
    assert response.status_code == 404


def test_delete_removes_row_and_file(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    image_id = upload(client, user_headers, make_image("GIF")).json()["id"]
    response = client.delete(f"{IMAGES}/{image_id}", headers=user_headers)
    assert response.status_code == 204
    assert stored_files() == []
    assert row_count(db) == 0
    assert client.get(f"{IMAGES}/{image_id}", headers=user_headers).status_code == 404


def test_rolled_back_upload_removes_its_file(db: Session, user: User) -> None:
    """A row that is never committed takes its file with it (the request's commit failed)."""
    folder = settings.UPLOAD_DIR / "images"
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / ".upload-test"
    staged.write_bytes(make_image("PNG"))
    public = image_service._store(db, user, image_service._StagedUpload(path=staged, size=1))
    assert stored_files() == [public.id]
    db.rollback()
    assert stored_files() == []


def test_rolled_back_delete_keeps_the_file(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    image_id = upload(client, user_headers, make_image("PNG")).json()["id"]
    image_service.delete_image(db, user, image_id)
    db.rollback()
    assert stored_files() == [image_id]
    image_service.delete_image(db, user, image_id)
    db.commit()
    assert stored_files() == []


# ---------------------------------------------------------------------------- data URLs


def test_load_data_urls(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User, other_user: User
) -> None:
    png = make_image("PNG")
    jpeg = make_image("JPEG")
    first = upload(client, user_headers, png).json()["id"]
    second = upload(client, user_headers, jpeg, name="b.jpg").json()["id"]
    urls = image_service.load_data_urls(db, user, [second, first, second])
    assert [url.split(",")[0] for url in urls] == [
        "data:image/jpeg;base64",
        "data:image/png;base64",
        "data:image/jpeg;base64",
    ]
    assert base64.b64decode(urls[1].split(",", 1)[1]) == png
    assert image_service.load_data_urls(db, user, []) == []
    for ids in ([first], [first, "0" * 32], ["../etc"]):
        with pytest.raises(NotFound) as caught:
            image_service.load_data_urls(db, other_user if ids == [first] else user, ids)
        assert caught.value.code == "image_not_found"


def test_load_data_urls_with_missing_file_is_404(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    image_id = upload(client, user_headers, make_image("PNG")).json()["id"]
    (settings.UPLOAD_DIR / "images" / image_id).unlink()
    with pytest.raises(NotFound):
        image_service.load_data_urls(db, user, [image_id])
    assert client.get(f"{IMAGES}/{image_id}", headers=user_headers).status_code == 404
