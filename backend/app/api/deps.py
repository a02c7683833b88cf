"""Shared dependencies: the request's DB session, the acting user, admin checks, client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from app.database import get_db
from app.exceptions import PermissionDenied, Unauthorized
from app.models import User
from app.services import auth_service

# scope="function": the session commits when the route returns, before the response is sent,
# so a client never sees success for a write that then fails to commit.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


def get_user_pending_password_change(
    db: SessionDep, token: Annotated[str | None, Depends(_bearer)]
) -> User:
    """The signed-in user, even one who still has to change the password."""
    if not token:
        raise Unauthorized("Not authenticated", code="not_authenticated")
    user = auth_service.user_from_access_token(db, token)
    # End the read transaction in this thread: the route runs in another one, and a request must
    # not hold a pooled connection while it waits for a thread (see app.api.routing). The user
    # stays loaded (expire_on_commit=False).
    db.commit()
    return user


# Async although nothing is awaited: a check without I/O runs on the event loop instead of costing
# a thread-pool hop on every request.
async def get_current_user(
    user: Annotated[User, Depends(get_user_pending_password_change)],
) -> User:
    """The signed-in user, refused while a forced password change is pending."""
    if user.must_change_password:
        raise PermissionDenied(
            "You must change your password before continuing", code="password_change_required"
        )
    return user


async def require_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("Administrator access required", code="admin_required")
    return user


AnyUser = Annotated[User, Depends(get_user_pending_password_change)]
CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(require_admin)]


def client_ip(request: Request) -> str:
    """The peer address (uvicorn applies X-Forwarded-For only from trusted proxies)."""
    return request.client.host if request.client else "unknown"


ClientIP = Annotated[str, Depends(client_ip)]
