"""The route class of every router: sync endpoints commit the request's session themselves."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session


def _commit_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the signature and globals through __wrapped__
    def run(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session):
                value.commit()
        return result

    return run


class CommittingRoute(APIRoute):
    """A sync endpoint commits the request's session (SessionDep) in its own worker thread,
    right after it returns, instead of in the session dependency's clean-up.

    That clean-up needs a thread of its own: a request holding a connection (and SQLite's write
    lock) until it gets one deadlocks the server once every thread is taken by requests waiting
    for a connection (bench/api_concurrency.py: every request failed at 100 concurrent). Done
    here, no request holds a connection between two thread hops. A route that raises commits
    nothing: the dependency rolls back as before. Async endpoints commit their last step with
    `app.database.run_then_commit`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _commit_after(endpoint)
        super().__init__(path, endpoint, **kwargs)


def multipart_body(**fields: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for an upload route whose body a service reads as a stream (FastAPI then
    does not know its shape): a multipart form with a required binary `file` and `fields`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}, **fields},
                    }
                }
            },
        }
    }
