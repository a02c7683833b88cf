from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from app.utils.security import PASSWORD_MAX_LENGTH, password_problem

NICKNAME_MIN = 2
NICKNAME_MAX = 32


def check_password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def clean_nickname(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if not NICKNAME_MIN <= len(value) <= NICKNAME_MAX:
        raise ValueError(f"Nickname must be {NICKNAME_MIN}-{NICKNAME_MAX} characters")
    if "@" in value:
        raise ValueError("Nickname must not contain '@'")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("Nickname must not contain control characters")
    return value


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    nickname: str
    role: Literal["admin", "user"]
    is_active: bool
    created_at: datetime


class UserMe(UserPublic):
    must_change_password: bool


class AdminUserPublic(UserPublic):
    """What the admin panel shows: also whether the row may be changed at all."""

    is_protected: bool
    last_login_at: datetime | None


class RegisterRequest(BaseModel):
    email: EmailStr = Field(max_length=254)
    nickname: str = Field(max_length=64)
    password: str = Field(max_length=PASSWORD_MAX_LENGTH * 4)

    _nickname = field_validator("nickname")(clean_nickname)
    _password = field_validator("password")(check_password)


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=254, description="Email or nickname")
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires")
    user: UserPublic
    must_change_password: bool


class ChangePasswordRequest(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(max_length=PASSWORD_MAX_LENGTH * 4)

    _new = field_validator("new_password")(check_password)


class PasswordResetRequest(BaseModel):
    email: EmailStr = Field(max_length=254)


class PasswordResetConfirm(BaseModel):
    token: str = Field(min_length=1, max_length=256)
    new_password: str = Field(max_length=PASSWORD_MAX_LENGTH * 4)

    _new = field_validator("new_password")(check_password)


class LoginHints(BaseModel):
    default_admin: bool


class AdminUserUpdate(BaseModel):
    role: Literal["admin", "user"] | None = None
    is_active: bool | None = None


class ResetLink(BaseModel):
    reset_url: str
    expires_at: datetime


class UserCounts(BaseModel):
    total: int
    active: int
    admins: int


class AdminStats(BaseModel):
    users: UserCounts
