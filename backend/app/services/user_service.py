"""User administration: listing, role and status changes, deletion, statistics."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.exceptions import BadRequest, NotFound
from app.models import RefreshToken, User, UserRole
from app.schemas.common import Page
from app.schemas.user import AdminStats, AdminUserPublic, AdminUserUpdate, UserCounts
from app.services import (
    auth_service,
    dataset_service,
    image_service,
    runtime_service,
    training_service,
)

_LIKE_ESCAPE = "\\"


def _like_pattern(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def list_users(
    db: Session, *, page: int, size: int, q: str | None, role: str | None
) -> Page[AdminUserPublic]:
    """One page of users, newest first, filtered by a search text and a role."""
    conditions = []
    if q and q.strip():
        pattern = _like_pattern(q.strip())
        conditions.append(
            or_(
                User.email.like(pattern, escape=_LIKE_ESCAPE),
                User.nickname_key.like(pattern, escape=_LIKE_ESCAPE),
            )
        )
    if role:
        conditions.append(User.role == role)
    total = db.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    rows = db.scalars(
        select(User)
        .where(*conditions)
        .order_by(User.created_at.desc(), User.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return Page[AdminUserPublic](
        items=[AdminUserPublic.model_validate(row) for row in rows],
        total=total,
        page=page,
        size=size,
    )


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("User not found", code="user_not_found")
    return user


_PAST = {"delete": "deleted", "demote": "demoted", "disable": "disabled", "reset": "reset"}


def _refuse_if_protected(actor: User, target: User, action: str) -> None:
    if target.is_protected:
        raise BadRequest(
            f"The built-in admin account cannot be {_PAST[action]}", code="protected_user"
        )
    if target.id == actor.id:
        raise BadRequest(f"You cannot {action} your own account", code="protected_user")


def update_user(db: Session, actor: User, user_id: int, data: AdminUserUpdate) -> User:
    """Change a user's role or active flag; never the protected admin's or your own."""
    target = get_user(db, user_id)
    demotes = data.role is not None and data.role != target.role and target.is_admin
    disables = data.is_active is False and target.is_active
    if demotes or disables:
        _refuse_if_protected(actor, target, "demote" if demotes else "disable")
    if data.role is not None:
        target.role = data.role
    if data.is_active is not None:
        target.is_active = data.is_active
    if disables:
        # A disabled account keeps no sessions: refresh tokens die now, access tokens at once
        # because every request re-reads the user.
        auth_service.revoke_refresh_tokens(db, RefreshToken.user_id == target.id)
    db.flush()
    return target


def delete_user(db: Session, actor: User, user_id: int) -> None:
    """Delete a user and everything they own (cascade)."""
    target = get_user(db, user_id)
    _refuse_if_protected(actor, target, "delete")
    # Refused while one of their training runs is going (its process would be orphaned).
    training_service.before_owner_delete(db, target.id)
    runtime_service.before_owner_delete(db, target.id)
    # Their uploads and job folders are files as well as rows: removed once the deletion commits.
    dataset_service.remove_files_of_owner(db, target.id)
    image_service.remove_files_of_owner(db, target.id)
    db.delete(target)
    db.flush()


def admin_reset_link(db: Session, actor: User, user_id: int) -> auth_service.ResetDelivery:
    """A reset link an admin hands over by hand; not for the protected admin or yourself."""
    target = get_user(db, user_id)
    _refuse_if_protected(actor, target, "reset")
    return auth_service.create_reset_link(db, target)


def stats(db: Session) -> AdminStats:
    """Counts for the dashboard."""
    total, active, admins = db.execute(
        select(
            func.count(User.id),
            func.count(User.id).filter(User.is_active.is_(True)),
            func.count(User.id).filter(User.role == UserRole.ADMIN.value),
        )
    ).one()
    return AdminStats(users=UserCounts(total=total, active=active, admins=admins))
