"""Sign-up, sign-in, token refresh, sign-out and password management."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Cookie, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import AnyUser, ClientIP, SessionDep, get_user_pending_password_change
from app.api.routing import CommittingRoute
from app.config import settings
from app.schemas.user import (
    ChangePasswordRequest,
    LoginHints,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RegisterRequest,
    TokenResponse,
    UserMe,
    UserPublic,
)
from app.services import auth_service, mail

REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_PATH = "/api/auth"

public_router = APIRouter(route_class=CommittingRoute, prefix="/auth", tags=["auth"])
account_router = APIRouter(
    route_class=CommittingRoute,
    prefix="/auth",
    tags=["auth"],
    dependencies=[Depends(get_user_pending_password_change)],
)

RefreshCookie = Annotated[str | None, Cookie(alias=REFRESH_COOKIE, include_in_schema=False)]

_FORM_TYPE = "application/x-www-form-urlencoded"  # what Swagger's Authorize sends
_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginRequest.model_json_schema()},
        },
    }
}


async def login_credentials(request: Request) -> LoginRequest:
    """Read {username, password} from JSON or from the OAuth2 password form (Swagger)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if content_type == _FORM_TYPE:
        form = await request.form()
        data = {key: form.get(key) for key in ("username", "password") if key in form}
    else:
        try:
            data = await request.json()
        except ValueError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
            ) from None
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _set_refresh_cookie(response: Response, raw: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        raw,
        max_age=settings.REFRESH_TOKEN_EXPIRE_DAYS * 86400,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        secure=settings.COOKIE_SECURE,
        samesite="lax",
    )


def _clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        secure=settings.COOKIE_SECURE,
        samesite="lax",
    )


def _token_response(response: Response, issued: auth_service.IssuedSession) -> TokenResponse:
    _set_refresh_cookie(response, issued.refresh_token)
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        user=UserPublic.model_validate(issued.user),
        must_change_password=issued.user.must_change_password,
    )


@public_router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def register(data: RegisterRequest, db: SessionDep) -> UserPublic:
    """Create an account (when registration is open)."""
    return UserPublic.model_validate(auth_service.register(db, data))


@public_router.post("/login", response_model=TokenResponse, openapi_extra=_LOGIN_BODY)
def login(
    credentials: Annotated[LoginRequest, Depends(login_credentials)],
    db: SessionDep,
    ip: ClientIP,
    response: Response,
) -> TokenResponse:
    """Sign in with email or nickname; sets the refresh-token cookie."""
    issued = auth_service.login(db, credentials.username, credentials.password, ip)
    return _token_response(response, issued)


@public_router.post("/refresh", response_model=TokenResponse)
def refresh(db: SessionDep, response: Response, token: RefreshCookie = None) -> TokenResponse:
    """Trade the refresh cookie for a new access token and a rotated cookie."""
    issued = auth_service.refresh(db, token)
    return _token_response(response, issued)


@public_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(db: SessionDep, token: RefreshCookie = None) -> Response:
    """Sign out: revoke this session's refresh-token family and clear the cookie."""
    auth_service.logout(db, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_refresh_cookie(response)
    return response


@public_router.get("/login-hints", response_model=LoginHints)
def login_hints(db: SessionDep) -> LoginHints:
    """Whether the login page may show the default-admin hint."""
    return LoginHints(default_admin=auth_service.default_admin_hint(db))


@public_router.post("/password-reset/request", status_code=status.HTTP_202_ACCEPTED)
def password_reset_request(
    data: PasswordResetRequest, db: SessionDep, ip: ClientIP, background: BackgroundTasks
) -> dict[str, str]:
    """Mail a reset link if the address is registered; the answer is the same either way."""
    delivery = auth_service.request_password_reset(db, str(data.email), ip)
    if delivery is not None:
        # Sent after the response (and after the commit): timing reveals nothing.
        background.add_task(
            mail.send_password_reset,
            delivery.email,
            delivery.reset_url,
            settings.PASSWORD_RESET_EXPIRE_MINUTES,
        )
    return {"detail": "If this address is registered, a reset link is on its way"}


@public_router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT)
def password_reset_confirm(data: PasswordResetConfirm, db: SessionDep) -> Response:
    """Set a new password with a reset token (single use)."""
    auth_service.confirm_password_reset(db, data.token, data.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@account_router.get("/me", response_model=UserMe)
def me(user: AnyUser) -> UserMe:
    """The signed-in user."""
    return UserMe.model_validate(user)


@account_router.post("/change-password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    data: ChangePasswordRequest, user: AnyUser, db: SessionDep, token: RefreshCookie = None
) -> Response:
    """Change your password; your other sessions are signed out."""
    auth_service.change_password(db, user, data.current_password, data.new_password, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
