"""Saved model comparisons: CRUD (own rows only) and their export as training data.

A test keeps the prompt, the images, the sampling overrides and, per compared model, the answer,
reasoning, metrics, error and the user's rating, plus which answer won. The exports turn those
votes into LLaMA-Factory datasets (alpaca formatting, one JSON object per line):

- `dpo` (preference, `ranking: true`): `{"prompt", "chosen", "rejected"}`. With a winner, one
  pair per other answer; without one, one pair per two rated answers whose ratings differ.
  dataset_info columns: `{"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}`
  (+ `"system"`, `"images"` when the file has them).
- `sft`: `{"instruction", "input": "", "output"}` from the winner, else the single best-rated
  answer. dataset_info: the alpaca defaults (+ `"system"`, `"images"`).

Failed and empty answers never enter a file. Optional keys are uniform within a file: when any
row has a system prompt every row has `"system"` ("" for none), and likewise `"images"`, so that
`datasets` infers one schema for the whole file. Images are listed by id, relative to
UPLOAD_DIR/images (LLaMA-Factory's `media_dir`), with one `<image>` placeholder per image in
front of the prompt, as LLaMA-Factory's multimodal datasets expect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database import utcnow
from app.exceptions import FieldError, InvalidFields, NotFound
from app.models import ModelTest, User
from app.schemas.common import Page
from app.schemas.model_test import (
    ModelTestCreate,
    ModelTestPublic,
    ModelTestResult,
    ModelTestUpdate,
)
from app.services import image_service

IMAGE_PLACEHOLDER = "<image>"
_TITLE_FROM_PROMPT = 60


def _not_found() -> NotFound:
    return NotFound("Model test not found", code="model_test_not_found")


def _results(row: ModelTest) -> list[ModelTestResult]:
    return [ModelTestResult.model_validate(item) for item in row.results or []]


def to_public(row: ModelTest) -> ModelTestPublic:
    """The response shape of one saved test."""
    return ModelTestPublic(
        id=row.id,
        title=row.title,
        prompt=row.prompt,
        system_prompt=row.system_prompt,
        image_ids=list(row.image_ids or []),
        params=dict(row.params or {}),
        results=_results(row),
        winner_index=row.winner_index,
        notes=row.notes,
        created_at=row.created_at,
    )


def _default_title(prompt: str) -> str:
    first_line = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
    if len(first_line) <= _TITLE_FROM_PROMPT:
        return first_line
    return first_line[: _TITLE_FROM_PROMPT - 1].rstrip() + "…"


def _get_own(db: Session, actor: User, test_id: int) -> ModelTest:
    row = db.scalar(
        select(ModelTest).where(ModelTest.id == test_id, ModelTest.owner_id == actor.id)
    )
    if row is None:
        raise _not_found()
    return row


# ----------------------------------------------------------------------------- CRUD


def create_test(db: Session, actor: User, data: ModelTestCreate) -> ModelTestPublic:
    """Save a comparison for `actor`; its images must be the actor's (404 otherwise)."""
    image_service.require_owned(db, actor, data.image_ids)
    row = ModelTest(
        owner_id=actor.id,
        title=data.title or _default_title(data.prompt),
        prompt=data.prompt,
        system_prompt=data.system_prompt or None,
        image_ids=list(data.image_ids),
        params=data.params.model_dump(exclude_none=True) if data.params else {},
        results=[item.model_dump(mode="json") for item in data.results],
        winner_index=data.winner_index,
        notes=data.notes,
        created_at=utcnow(),
    )
    db.add(row)
    db.flush()
    return to_public(row)


def list_tests(db: Session, actor: User, *, page: int, size: int) -> Page[ModelTestPublic]:
    """One page of the actor's saved tests, newest first."""
    total = (
        db.scalar(select(func.count()).select_from(ModelTest).where(ModelTest.owner_id == actor.id))
        or 0
    )
    rows = db.scalars(
        select(ModelTest)
        .where(ModelTest.owner_id == actor.id)
        .order_by(ModelTest.created_at.desc(), ModelTest.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return Page[ModelTestPublic](
        items=[to_public(row) for row in rows], total=total, page=page, size=size
    )


def get_test(db: Session, actor: User, test_id: int) -> ModelTestPublic:
    """One own test."""
    return to_public(_get_own(db, actor, test_id))


def update_test(db: Session, actor: User, test_id: int, data: ModelTestUpdate) -> ModelTestPublic:
    """Change the title, notes, ratings or winner of an own test."""
    row = _get_own(db, actor, test_id)
    changes = data.model_dump(exclude_unset=True)
    results = _results(row)
    errors: list[FieldError] = []
    if "ratings" in changes:
        ratings: list[int | None] = changes["ratings"]
        if len(ratings) != len(results):
            errors.append(
                FieldError(
                    ("body", "ratings"),
                    f"Send one rating (or null) for each of the {len(results)} results",
                )
            )
        else:
            for item, rating in zip(results, ratings, strict=True):
                item.rating = rating
    if "winner_index" in changes and changes["winner_index"] is not None:
        winner = changes["winner_index"]
        if winner >= len(results):
            errors.append(
                FieldError(
                    ("body", "winner_index"),
                    f"winner_index must index results (0-{len(results) - 1})",
                )
            )
        elif results[winner].error is not None:
            errors.append(
                FieldError(("body", "winner_index"), "The winner cannot be a result that failed")
            )
    if errors:
        raise InvalidFields(errors)
    if "ratings" in changes:
        row.results = [item.model_dump(mode="json") for item in results]
    if "winner_index" in changes:
        row.winner_index = changes["winner_index"]
    if "title" in changes:
        row.title = changes["title"] or _default_title(row.prompt)
    if "notes" in changes:
        row.notes = changes["notes"]
    db.flush()
    return to_public(row)


def delete_test(db: Session, actor: User, test_id: int) -> None:
    """Delete an own test (its images stay: they belong to the user's uploads)."""
    db.delete(_get_own(db, actor, test_id))
    db.flush()


# --------------------------------------------------------------------------- export


def _usable(item: ModelTestResult) -> bool:
    return item.error is None and bool(item.content.strip())


def preference_pairs(
    results: Sequence[ModelTestResult], winner_index: int | None
) -> list[tuple[int, int]]:
    """(chosen, rejected) result indexes: the winner against every other usable answer, or,
    without a winner, every two rated answers whose ratings differ (ties give nothing).
    Identical answers teach nothing and are skipped."""
    usable = [i for i, item in enumerate(results) if _usable(item)]
    pairs: list[tuple[int, int]] = []
    if winner_index is not None:
        if winner_index in usable:
            pairs = [(winner_index, i) for i in usable if i != winner_index]
    else:
        rated = [i for i in usable if results[i].rating is not None]
        rated.sort(key=lambda i: (-(results[i].rating or 0), i))
        for pos, better in enumerate(rated):
            for worse in rated[pos + 1 :]:
                if (results[better].rating or 0) > (results[worse].rating or 0):
                    pairs.append((better, worse))
    return [(c, r) for c, r in pairs if results[c].content != results[r].content]


def best_answer(results: Sequence[ModelTestResult], winner_index: int | None) -> int | None:
    """The index of the answer to learn from: the winner, else the first best-rated one."""
    if winner_index is not None:
        if 0 <= winner_index < len(results) and _usable(results[winner_index]):
            return winner_index
        return None
    rated = [i for i, item in enumerate(results) if _usable(item) and item.rating is not None]
    if not rated:
        return None
    return min(rated, key=lambda i: (-(results[i].rating or 0), i))


def _prompt_text(row: ModelTest) -> str:
    return IMAGE_PLACEHOLDER * len(row.image_ids or []) + row.prompt


def _export_rows(rows: Sequence[ModelTest], fmt: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        results = _results(row)
        extras = {"system": row.system_prompt or "", "images": list(row.image_ids or [])}
        if fmt == "dpo":
            for chosen, rejected in preference_pairs(results, row.winner_index):
                out.append(
                    {
                        "prompt": _prompt_text(row),
                        "chosen": results[chosen].content,
                        "rejected": results[rejected].content,
                        **extras,
                    }
                )
        else:
            best = best_answer(results, row.winner_index)
            if best is not None:
                out.append(
                    {
                        "instruction": _prompt_text(row),
                        "input": "",
                        "output": results[best].content,
                        **extras,
                    }
                )
    # Optional keys only when some row needs them, then in every row (one schema per file).
    for key in ("system", "images"):
        if not any(item[key] for item in out):
            for item in out:
                del item[key]
    return out


def _select_for_export(db: Session, actor: User, ids: Sequence[int] | None) -> list[ModelTest]:
    query = select(ModelTest).where(ModelTest.owner_id == actor.id)
    if ids:
        wanted = set(ids)
        query = query.where(ModelTest.id.in_(wanted))
    rows = list(db.scalars(query.order_by(ModelTest.created_at, ModelTest.id)).all())
    if ids and len(rows) != len(set(ids)):
        raise _not_found()
    return rows


def export_tests(
    db: Session, actor: User, fmt: str, ids: Sequence[int] | None = None
) -> tuple[str, str]:
    """(file name, JSONL text) of the actor's tests (all, or `ids`, each of which must be own)
    as a DPO preference or SFT dataset, oldest first."""
    rows = _export_rows(_select_for_export(db, actor, ids), fmt)
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in rows)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return f"model-tests-{fmt}-{stamp}.jsonl", text
