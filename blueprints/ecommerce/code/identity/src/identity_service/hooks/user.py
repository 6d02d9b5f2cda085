"""Domain hooks of User: a new user's password credential is written in the user's own
transaction. (Users are not deleted, they are deactivated: `PATCH /v1/users/{id}` with
`{"active": false}`; their logins and refresh tokens are refused from then on.)

Yours: created once by microforge, never overwritten by `copier update`. The generated
repository calls these methods inside the transaction of each write (see `entity_hooks.py`).
"""

from contextvars import ContextVar

from .. import entity_hooks
from ..models.credential import Credential
from ..models.user import User

PASSWORD_HASH: ContextVar[str | None] = ContextVar("identity_password_hash", default=None)
"""The argon2 hash of the password of the user being created (set by the registration and the
admin start-up in custom_routes.py around `UserRepository.create`): `after_create` stores it as
the user's Credential, committed together with the user and its UserCreated event. Unset (a
user created through `POST /v1/users` by an admin): the user has no password yet."""


class UserHooks(entity_hooks.EntityHooks[User]):
    """Hooks of every write of a User."""

    async def after_create(
        self,
        ctx: entity_hooks.HookContext,
        row: User,
    ) -> None:
        """Store the pending password hash, if any, as the user's credential."""
        password_hash = PASSWORD_HASH.get()
        if password_hash is not None:
            ctx.session.add(Credential(user_id=row.id, password_hash=password_hash))
