"""All tables, imported here so that Alembic sees the full metadata."""

from app.models.auth_token import PasswordResetToken, RefreshToken
from app.models.chat import ChatMessageRow, ChatSession
from app.models.dataset import Dataset
from app.models.media import UploadedImage
from app.models.model_config import AppState, ModelConfig, ProviderModel
from app.models.model_runtime import ModelRuntime
from app.models.model_test import ModelTest
from app.models.system_prompt import SystemPrompt
from app.models.training import TrainingJob, TrainingJobDataset, TrainingMetric
from app.models.user import User, UserRole

__all__ = [
    "AppState",
    "ChatMessageRow",
    "ChatSession",
    "Dataset",
    "ModelConfig",
    "ModelRuntime",
    "ModelTest",
    "PasswordResetToken",
    "ProviderModel",
    "RefreshToken",
    "SystemPrompt",
    "TrainingJob",
    "TrainingJobDataset",
    "TrainingMetric",
    "UploadedImage",
    "User",
    "UserRole",
]
