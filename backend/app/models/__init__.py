"""All tables, imported here so that Alembic sees the full metadata."""

from app.models.auth_token import PasswordResetToken, RefreshToken
from app.models.user import User, UserRole

__all__ = ["PasswordResetToken", "RefreshToken", "User", "UserRole"]
