from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: `items` plus what a paginated table needs."""

    items: list[T]
    total: int
    page: int
    size: int
