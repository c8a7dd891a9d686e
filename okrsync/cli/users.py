"""``okrsync users`` (who may sign in to the web app) and ``okrsync serve`` (the web app itself)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from okrsync.cli.context import JsonOpt, console, err, open_project, open_store
from okrsync.errors import ConfigError, NotFound
from okrsync.throttle import DRILL_PER_MINUTE, EXPORTS_PER_MINUTE
from okrsync.users import MAX_TOKEN_DAYS, TOKEN_DAYS

users_app = typer.Typer(
    help="Users of the web app (okrsync serve): names, roles, passwords, API tokens.", no_args_is_help=True
)
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
]


def _ctx(ctx: typer.Context) -> tuple[Any, Any]:
    project = open_project(ctx)
    return project, open_store(ctx, project)


def _password(from_stdin: bool) -> str:
    from okrsync.users import check_password

    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
    else:
        text = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return check_password(text)


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="One of the project's roles (settings.roles).")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user who signs in with a password (asked twice, never echoed). Audited."""
    from okrsync import accounts, users

    project, store = _ctx(ctx)
    users.check_name(name)
    users.check_role(project, role)
    hashed = users.hash_password(_password(password_stdin))
    with store.engine.begin() as conn:
        accounts.add_user(conn, project, accounts.Actor.cli(), name, role, hashed)
    console.print(f"[green]✓[/green] added {escape(name)} ({escape(role)})")


@users_app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every user with their role."""
    from okr_store import users as stored
    from okrsync.render import dumps, fmt_time

    _, store = _ctx(ctx)
    with store.engine.connect() as conn:
        found = stored.list_users(conn)
    if json_out:
        console.print_json(dumps({"users": [u.__dict__ for u in found]}))
        return
    if not found:
        console.print("No users yet: `okrsync users add NAME --role admin`.")
        return
    t = Table(title="Users")
    for col in ("name", "role", "created", "disabled"):
        t.add_column(col)
    for u in found:
        t.add_row(escape(u.name), escape(u.role), fmt_time(u.created_at), "yes" if u.disabled else "")
    console.print(t)


@users_app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Remove a user, with their sessions and API tokens. Audited."""
    from okrsync import accounts

    project, store = _ctx(ctx)
    with store.engine.begin() as conn:
        accounts.remove_user(conn, project, accounts.Actor.cli(), name)
    console.print(f"[green]✓[/green] removed {escape(name)}")


@users_app.command("passwd")
def passwd(ctx: typer.Context, name: str, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password (and end their sessions and API tokens). Audited."""
    from okr_store import users as stored
    from okrsync import accounts, users

    project, store = _ctx(ctx)
    with store.engine.connect() as conn:
        if stored.get_user(conn, name) is None:  # before asking for a password
            raise NotFound(f"no user {name!r}", hint="`okrsync users list` shows them")
    hashed = users.hash_password(_password(password_stdin))
    with store.engine.begin() as conn:
        ended = accounts.change_password(conn, project, accounts.Actor.cli(), name, hashed)
    console.print(
        f"[green]✓[/green] new password set for {escape(name)}; their sessions and {ended} API tokens ended"
    )


@users_app.command("role")
def role(ctx: typer.Context, name: str, new_role: Annotated[str, typer.Argument(metavar="ROLE")]) -> None:
    """Give a user another role (their sessions and API tokens end). Audited."""
    from okrsync import accounts

    project, store = _ctx(ctx)
    with store.engine.begin() as conn:
        accounts.change_role(conn, project, accounts.Actor.cli(), name, new_role)
    console.print(
        f"[green]✓[/green] {escape(name)} is now {escape(new_role)}; their sessions and API tokens ended"
    )


@users_app.command("token")
def token(
    ctx: typer.Context,
    name: str,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    days: Annotated[
        int, typer.Option(min=1, max=MAX_TOKEN_DAYS, help="Expire after this many days.")
    ] = TOKEN_DAYS,
) -> None:
    """Create an API token for a user and print it once (send it as `Authorization: Bearer …`).
    Every token expires; a password or role change ends it. Audited."""
    from okrsync import accounts

    _, store = _ctx(ctx)
    with store.engine.begin() as conn:
        secret, t = accounts.issue_token(conn, accounts.Actor.cli(), name, label, days)
    err.print(
        f"API token #{t.id} for {escape(name)} ({escape(label)}), expires {t.expires_at:%Y-%m-%d %H:%M} UTC. "
        "It is shown only now:"
    )
    sys.stdout.write(secret + "\n")


@users_app.command("revoke")
def revoke(ctx: typer.Context, token_id: int) -> None:
    """Revoke an API token by its number (`okrsync users tokens` lists them). Audited."""
    from okrsync import accounts

    _, store = _ctx(ctx)
    with store.engine.begin() as conn:
        accounts.revoke_token(conn, accounts.Actor.cli(), token_id)
    console.print(f"[green]✓[/green] revoked API token #{token_id}")


@users_app.command("tokens")
def tokens(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every API token (never the token itself: the store keeps only its hash)."""
    from okr_store import users as stored
    from okrsync.render import dumps, fmt_time

    _, store = _ctx(ctx)
    with store.engine.connect() as conn:
        found = stored.list_tokens(conn)
    if json_out:
        console.print_json(dumps({"tokens": [t.__dict__ for t in found]}))
        return
    t = Table(title="API tokens")
    for col in ("#", "user", "label", "created", "expires", "last used"):
        t.add_column(col)
    for x in found:
        t.add_row(
            str(x.id),
            escape(x.user_name),
            escape(x.label),
            fmt_time(x.created_at),
            fmt_time(x.expires_at) if x.expires_at else "never",
            fmt_time(x.last_used_at) if x.last_used_at else "",
        )
    console.print(t)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8800,
    session_hours: Annotated[
        float, typer.Option(min=0.1, max=24 * 30, help="How long a sign-in lasts.")
    ] = 12.0,
    drill_per_minute: Annotated[
        int, typer.Option(min=1, max=100_000, help="Pages of records and diffs a user may ask for a minute.")
    ] = DRILL_PER_MINUTE,
    exports_per_minute: Annotated[
        int, typer.Option(min=1, max=10_000, help="CSV exports a user may ask for a minute.")
    ] = EXPORTS_PER_MINUTE,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log each request (method, path, status, user, duration, address) and each sign-in to "
            "standard error; never query strings or tokens.",
        ),
    ] = True,
) -> None:
    """Start the web app: the objectives tree, KR history and drill-down, and the admin's check review."""
    import logging

    import uvicorn

    from okr_store import users as stored
    from okrsync.web.app import create_app

    project, store = _ctx(ctx)
    with store.engine.connect() as conn:
        if not stored.list_users(conn):
            err.print(
                "[yellow]No users yet[/yellow]: nobody can sign in. Add one with "
                f"`okrsync -p {project.path} users add NAME --role admin`."
            )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            "[yellow]Listening beyond this machine[/yellow]: put it behind HTTPS (a reverse proxy) "
            "so passwords and session cookies are not sent in clear."
        )
    import socket

    try:  # uvicorn would only log a bind error and exit 3: say it our way, before starting
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port"
        ) from None
    app = create_app(
        project,
        store,
        session_hours=session_hours,
        drill_per_minute=drill_per_minute,
        exports_per_minute=exports_per_minute,
    )
    if access_log:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        web_log = logging.getLogger("okrsync.web")
        web_log.addHandler(handler)
        web_log.setLevel(logging.INFO)
    console.print(f"okrsync web app on http://{host}:{port}/ ({store.describe()}) — Ctrl+C stops it")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
