"""All tables, imported here so that Alembic sees the full metadata."""

from app.models.auth_token import PasswordResetToken, RefreshToken
from app.models.model_config import AppState, ModelConfig, ProviderModel
from app.models.system_prompt import SystemPrompt
from app.models.user import User, UserRole

__all__ = [
    "AppState",
    "ModelConfig",
    "PasswordResetToken",
    "ProviderModel",
    "RefreshToken",
    "SystemPrompt",
    "User",
    "UserRole",
]
