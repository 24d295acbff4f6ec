"""Command line: `tracker serve | user ... | share ... | link ... | token ... | alert ... | import | backup | restore | check`.

Thin on purpose: every rule lives in Accounts / the stores; this module parses arguments, asks for
passwords and confirmations, and turns expected failures into one line on stderr with exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Sequence, TypeVar

import click
from click.core import ParameterSource
from passlib.context import CryptContext

from tracker import __version__
from tracker.accounts import (
    SPEED_UNITS,
    Accounts,
    InvalidAlert,
    InvalidDeviceToken,
    InvalidLink,
    InvalidPassword,
    InvalidSecretFile,
    InvalidShare,
    InvalidUsername,
    check_new_password,
    live_view_refusal,
    parse_duration,
    parse_quiet_time,
    validate_username,
    validate_webhook_url,
)
from tracker import backup as backups
from tracker import courses as course_files
from tracker import formats, importer, transfer
from tracker import shard as shards
from tracker.progress import BYTES, ProgressBar
from tracker.storage import activities as stored_activities
from tracker.appsetup import device_setup
from tracker.config import DEFAULTS, FIELD_TYPES, SERVE_FLAGS, Settings, env_name, recorded_server_url
from tracker.retention import Cutoff, describe, parse_retention
from tracker.rules import iso_time
from tracker.webhooks import WebhookDestinations
from tracker.storage import courses as stored_courses
from tracker.storage import (
    ACCOUNTS_FILE, AccountStore, LinkRecord, SampleStore, SchemaTooNew, StorageUnavailable, UnknownUser,
    UserExists,
    device_last_seen,
)

T = TypeVar("T")

DATA_DIR_ENV = "TRACKER_DATA_DIR"
SHARD_MAP_ENV = "TRACKER_SHARD_MAP"
DEFAULT_DATA_DIR = DEFAULTS.data_dir

# Failures a user can cause or fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    InvalidUsername,
    InvalidPassword,
    InvalidShare,
    InvalidLink,
    InvalidAlert,
    InvalidDeviceToken,
    InvalidSecretFile,
    UserExists,
    UnknownUser,
    SchemaTooNew,
    backups.BackupError,
    StorageUnavailable,
    sqlite3.Error,
    OSError,
    formats.FormatError,
    transfer.ExportTooLarge,
    transfer.NothingToExport,
    course_files.InvalidCourse,
)


@dataclass(slots=True)
class CliOptions:
    """What the groups pass down to their commands (click's ctx.obj)."""

    data_dir: Path = DEFAULT_DATA_DIR
    data_dir_given: bool = False  # on the command line, not from the default or TRACKER_DATA_DIR
    shard_map: Path | None = None  # --map / TRACKER_SHARD_MAP: the account commands work on the user's shard
    # None: the strong default. Tests hand in a cheap context via CliRunner.invoke(obj=...).
    password_context: CryptContext | None = None


def _data_dir_option(*, on_group: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # On the group it reads the env var and has the default; on a subcommand it only overrides,
    # so both `tracker user --data-dir D add x` and `tracker user add x --data-dir D` work.
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=DATA_DIR_ENV if on_group else None,
        default=DEFAULT_DATA_DIR if on_group else None,
        show_default=on_group,
        help=f"Data folder (env {DATA_DIR_ENV})." if on_group else "Data folder; overrides the group's.",
    )


def _shard_map_option(*, on_group: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # Like --data-dir: on the group with the env var, on a subcommand as an override. Kept in ctx.obj
    # rather than passed to the command, which asks _account_options for the user's data folder.
    def remember(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(CliOptions).shard_map = value

    return click.option(
        "--map", "shard_map", type=click.Path(dir_okay=False, path_type=Path), expose_value=False, callback=remember,
        envvar=SHARD_MAP_ENV if on_group else None,
        help=f"A shard map (env {SHARD_MAP_ENV}): work on the data folder of the shard that holds the user.",
    )  # fmt: skip


def _account_folder_options(*, on_group: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--data-dir and --map together: the commands about one user's account take either."""

    def both(command: Callable[..., Any]) -> Callable[..., Any]:
        return _data_dir_option(on_group=on_group)(_shard_map_option(on_group=on_group)(command))

    return both


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except EXPECTED_ERRORS as exc:
        raise click.ClickException(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # a message with newlines would not be "one line"
    if isinstance(exc, UnknownUser) and not text:
        return "unknown user"
    if isinstance(exc, UserExists) and not text:
        return "user already exists"
    return text or type(exc).__name__


async def _with_accounts(
    options: CliOptions, action: Callable[[Accounts], Awaitable[T]], *, create: bool = False
) -> T:
    accounts_file = options.data_dir / ACCOUNTS_FILE
    if not create and not accounts_file.exists():
        # Opening would create an empty data folder: a mistyped --data-dir must not do that silently.
        raise click.ClickException(f"no accounts file {accounts_file}: wrong --data-dir, or no user added yet")
    store = await AccountStore.open(options.data_dir)
    try:
        return await action(Accounts(store, cache_seconds=0, password_context=options.password_context))
    finally:
        await store.close()


async def _delete_account_and_files(options: CliOptions, name: str) -> list[Path]:
    """The user's account, then their files. Account first: once it is gone a running server
    refuses the user, so no new samples arrive."""
    await _with_accounts(options, lambda accounts: accounts.delete_user(name))
    samples = SampleStore(options.data_dir)
    try:
        return await samples.delete_user(name)
    finally:
        await samples.close()


def _options(ctx: click.Context, data_dir: Path | None) -> CliOptions:
    options = ctx.ensure_object(CliOptions)
    if data_dir is not None:
        options.data_dir = data_dir
        options.data_dir_given |= ctx.get_parameter_source("data_dir") == ParameterSource.COMMANDLINE
    return options


def _account_options(ctx: click.Context, data_dir: Path | None, *users: str | None) -> CliOptions:
    """The options of a command about `users`' accounts: with a shard map, the data folder is that of
    the shard that holds them (a user the map does not name: the default shard's)."""
    options = _options(ctx, data_dir)
    if options.shard_map is None:
        return options
    if options.data_dir_given:
        raise click.UsageError("--map picks the data folder: leave out --data-dir")
    shard_map = _read_map(options.shard_map)
    named = [user for user in users if user is not None]
    if not named:
        raise click.UsageError("with --map, name the user: each shard keeps its own accounts")
    owners = {user: shard_map.shard_of(user) for user in named}
    shard_name = owners[named[0]]
    if len(set(owners.values())) > 1:
        where = " and ".join(f"{user} is on shard {owner}" for user, owner in owners.items())
        raise click.ClickException(f"{where}: shares work only between users of the same shard")
    options.data_dir = _map_data_dir(
        shard_map, shard_name, options.shard_map,
        f"{named[0]} is there: run the command on that machine, or add the folder to the shard's line",
    )  # fmt: skip
    return options


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        # Only the line ending goes; spaces may be part of the password.
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, default="", show_default=False)
    try:
        check_new_password(password)
    except InvalidPassword as exc:
        raise click.ClickException(str(exc)) from None
    return password


def _name_argument(name: str, *, required: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # Checked while parsing, so a bad name fails before any prompt or file access.
    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return validate_username(value)
        except InvalidUsername as exc:
            raise click.ClickException(str(exc)) from None

    return click.argument(name, required=required, callback=check)


async def _existing_user(accounts: Accounts, name: str) -> None:
    if await accounts.get_user(name) is None:
        raise UnknownUser(f"unknown user {name!r}")


def _iso(ns: int) -> str:
    return iso_time(ns, "seconds", "+00:00")


def _records_of(options: CliOptions, name: str, listing: Callable[[Accounts, str], Awaitable[list[T]]]) -> list[T]:
    """NAME's links, device tokens or alerts; an unknown NAME is an error, not an empty list."""

    async def records(accounts: Accounts) -> list[T]:
        await _existing_user(accounts, name)
        return await listing(accounts, name)

    return _run(_with_accounts(options, records))


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# ----- tracker -----


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _serve_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`serve`'s flags, one per entry of SERVE_FLAGS: each overrides its TRACKER_* variable (read by
    Settings.from_env, so a flag not given is None here)."""
    for setting, flag, text, extra in reversed(SERVE_FLAGS):
        kind = FIELD_TYPES[setting]
        env = env_name(setting) + (", comma-separated" if extra.get("repeatable") else "")
        default = extra.get("default", _shown(getattr(DEFAULTS, setting)))
        option: dict[str, Any] = {"help": f"{text} (env {env}) [default: {default}]", "metavar": extra.get("metavar")}
        if extra.get("repeatable"):
            option.update(multiple=True)
        elif kind is bool:
            option.update(is_flag=True, default=None)
        elif "choices" in extra:
            option.update(type=click.Choice(extra["choices"], case_sensitive=False))
        elif kind is Path:
            option.update(type=click.Path(file_okay=False, path_type=Path))
        else:
            option.update(type=kind)
        command = click.option(flag, setting, **option)(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracker")
def cli() -> None:
    """Tracker: a local-first, InfluxDB 1.x-compatible live-tracking server."""


@cli.command()
@_serve_options
# Given by the supervisor to the workers it starts (README "Workers"), never by people.
@click.option("--worker-index", "worker_index", type=int, default=None, hidden=True)
@click.option("--supervisor-pid", "supervisor_pid", type=int, default=None, hidden=True)
def serve(worker_index: int | None, supervisor_pid: int | None, **flags: Any) -> None:
    """Run the HTTP server until interrupted (Ctrl-C or SIGTERM).

    Flags override TRACKER_* environment variables, which override the defaults.
    """
    try:
        # A repeatable flag not given is (): not given, like None.
        settings = Settings.from_env(**{name: value if value != () else None for name, value in flags.items()})
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    from tracker import logs
    from tracker.app import run  # imported here: the account commands need none of the server
    from tracker.group import Worker
    from tracker.supervisor import check_port, die_with_supervisor, recover_journal, supervise

    try:
        if worker_index is not None:  # one worker of a group
            if supervisor_pid is not None:
                die_with_supervisor(supervisor_pid)
            run(settings, Worker(settings.data_dir, worker_index, settings.worker_count))
        elif settings.worker_count > 1:
            logs.configure(settings.log_level, "supervisor")
            sys.exit(supervise(settings, sys.argv[1:]))
        else:
            check_port(settings)  # a taken port fails before the data folder is made or touched
            recover_journal(settings)  # what a group's supervisor runs once, before serving
            run(settings)
    except EXPECTED_ERRORS as exc:  # e.g. the port is taken, the data folder is not writable
        raise click.ClickException(_one_line(exc)) from None


# ----- tracker user -----


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def user(ctx: click.Context, data_dir: Path) -> None:
    """Manage accounts (a user's database has the user's name)."""
    _options(ctx, data_dir)


@user.command("add")
@_name_argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_account_folder_options(on_group=False)
@click.pass_context
def user_add(ctx: click.Context, name: str, password_stdin: bool, data_dir: Path | None) -> None:
    """Create the account NAME (the password: at least 8 characters)."""
    options = _account_options(ctx, data_dir, name)
    # Checked before asking, so nobody types a password twice for a name that is taken.
    if (options.data_dir / ACCOUNTS_FILE).exists():
        _run(_with_accounts(options, lambda accounts: accounts.check_name_free(name)))
    password = _read_password(password_stdin)
    _run(_with_accounts(options, lambda accounts: accounts.add_user(name, password), create=True))
    click.echo(f"added user {name!r}")


@user.command("list")
@_data_dir_option(on_group=False)
@click.pass_context
def user_list(ctx: click.Context, data_dir: Path | None) -> None:
    """List accounts: name, creation time (UTC), whether a data file exists, and the retention
    ("default": the server's --retention)."""
    options = _options(ctx, data_dir)

    async def users_and_retention(accounts: Accounts) -> tuple[list[Any], dict[str, int]]:
        return await accounts.list_users(), await accounts.retention_overrides()

    users, retention = _run(_with_accounts(options, users_and_retention))
    if not users:
        click.echo("no users", err=True)
        return
    samples = SampleStore(options.data_dir)  # path_for only: opens nothing
    rows = [
        (u.name, _iso(u.created_ns), "yes" if samples.path_for(u.name).exists() else "no",
         describe(retention.get(u.name)))
        for u in sorted(users, key=lambda u: u.name)
    ]  # fmt: skip
    _table(("NAME", "CREATED", "DATA", "RETENTION"), rows)


@user.command("retention")
@_name_argument("name")
@click.argument("duration", metavar="DURATION|inf|default")
@_account_folder_options(on_group=False)
@click.pass_context
def user_retention(ctx: click.Context, name: str, duration: str, data_dir: Path | None) -> None:
    """Keep NAME's samples for DURATION (8h, 90m, 7d, 2w), forever (inf), or as the server's
    --retention says (default). Older samples are removed in the background; a running server
    follows the change at once."""
    options = _account_options(ctx, data_dir, name)
    retention_ns: int | None = None
    if duration.strip().lower() != "default":
        try:
            retention_ns = parse_retention(duration)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    _run(_with_accounts(options, lambda accounts: accounts.set_retention(name, retention_ns)))
    if retention_ns is None:
        click.echo(f"{name} follows the server's retention (--retention, TRACKER_RETENTION)")
    elif retention_ns == 0:
        click.echo(f"{name} keeps every sample")
    else:
        click.echo(f"{name} keeps samples for {describe(retention_ns)}")


@user.command("passwd")
@_name_argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_account_folder_options(on_group=False)
@click.pass_context
def user_passwd(ctx: click.Context, name: str, password_stdin: bool, data_dir: Path | None) -> None:
    """Set a new password for NAME (at least 8 characters) and sign NAME out of every browser; a
    running server honours both on the next request."""
    options = _account_options(ctx, data_dir, name)

    async def exists(accounts: Accounts) -> bool:
        return await accounts.get_user(name) is not None

    # Checked before asking, so nobody types a password twice for a misspelt name.
    if not _run(_with_accounts(options, exists)):
        raise click.ClickException(f"unknown user {name!r}")
    password = _read_password(password_stdin)
    ended = _run(_with_accounts(options, lambda accounts: accounts.set_password(name, password)))
    click.echo(f"changed the password of {name!r}; ended {ended} session{'' if ended == 1 else 's'}")


@user.command("delete")
@_name_argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_account_folder_options(on_group=False)
@click.pass_context
def user_delete(ctx: click.Context, name: str, yes: bool, data_dir: Path | None) -> None:
    """Delete NAME: the account, its shares, links, device tokens and alerts, and its data files."""
    options = _account_options(ctx, data_dir, name)

    async def plan(accounts: Accounts) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
        await _existing_user(accounts, name)
        shares = [s for s in await accounts.list_shares() if name in s]
        owned = [
            (len(await accounts.list_links(name)), "share link"),
            (len(await accounts.list_tokens(name)), "device token"),
            (len(await accounts.list_alerts(name)), "gone-quiet alert"),
        ]
        return shares, owned

    shares, owned = _run(_with_accounts(options, plan))
    files = [p for p in SampleStore(options.data_dir).files_of(name) if p.exists()]

    click.echo("This removes:")
    click.echo(f"  the account {name!r}")
    noun = "share" if len(shares) == 1 else "shares"
    listed = "; ".join(f"{viewer} can read {owner}" for owner, viewer in shares)
    click.echo(f"  {len(shares)} {noun}" + (f": {listed}" if shares else ""))
    for number, what in owned:
        if number:
            click.echo(f"  {number} {what}{'' if number == 1 else 's'}")
    for path in files:
        click.echo(f"  data file {path}")
    if not files:
        click.echo("  no data files (there are none)")
    if not yes:
        click.confirm(f"Delete user {name!r}?", abort=True)

    removed = _run(_delete_account_and_files(options, name))
    click.echo(f"deleted user {name!r}" + (f" and {len(removed)} data file(s)" if removed else ""))


# ----- tracker share -----


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def share(ctx: click.Context, data_dir: Path) -> None:
    """Let one user read another user's data."""
    _options(ctx, data_dir)


@share.command("add")
@_name_argument("owner")
@_name_argument("viewer")
@_account_folder_options(on_group=False)
@click.pass_context
def share_add(ctx: click.Context, owner: str, viewer: str, data_dir: Path | None) -> None:
    """Let VIEWER read OWNER's data (adding an existing share changes nothing)."""
    options = _account_options(ctx, data_dir, owner, viewer)
    _run(_with_accounts(options, lambda accounts: accounts.add_share(owner, viewer)))
    click.echo(f"{viewer} can read {owner}")


@share.command("remove")
@_name_argument("owner")
@_name_argument("viewer")
@_account_folder_options(on_group=False)
@click.pass_context
def share_remove(ctx: click.Context, owner: str, viewer: str, data_dir: Path | None) -> None:
    """Stop VIEWER reading OWNER's data."""
    options = _account_options(ctx, data_dir, owner, viewer)
    if not _run(_with_accounts(options, lambda accounts: accounts.remove_share(owner, viewer))):
        raise click.ClickException(f"{viewer!r} could not read {owner!r}: no such share")
    click.echo(f"{viewer} can no longer read {owner}")


@share.command("list")
@_name_argument("owner", required=False)
@_account_folder_options(on_group=False)
@click.pass_context
def share_list(ctx: click.Context, owner: str | None, data_dir: Path | None) -> None:
    """List shares, all or only OWNER's."""
    options = _account_options(ctx, data_dir, owner)
    shares = _run(_with_accounts(options, lambda accounts: accounts.list_shares(owner)))
    if not shares:
        click.echo("no shares", err=True)
        return
    _table(("OWNER", "VIEWER"), sorted(shares))


# ----- the live view: public profiles and share links -----


@user.command("public")
@_name_argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@_account_folder_options(on_group=False)
@click.pass_context
def user_public(ctx: click.Context, name: str, state: str, data_dir: Path | None) -> None:
    """Make NAME's live view public (anyone may watch) or private again (on|off)."""
    options = _account_options(ctx, data_dir, name)
    _run(_with_accounts(options, lambda accounts: accounts.set_public(name, state == "on")))
    if state == "on":
        click.echo(f"{name} is public: anyone can watch /watch/{name}")
    else:
        click.echo(f"{name} is private: only {name}, users it shares with, and share links can watch")


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def link(ctx: click.Context, data_dir: Path) -> None:
    """Share links: anyone holding one may watch the user's live view, until it expires or is revoked."""
    _options(ctx, data_dir)


def _public_url(flag: str | None, data_dir: Path) -> str:
    """--public-url, else TRACKER_PUBLIC_URL, else the URL the server last started with on this data
    folder, else http://HOST:PORT as `tracker serve` would listen with this environment."""
    try:
        settings = Settings.from_env(public_url=flag)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.public_url:
        return settings.external_url()
    return recorded_server_url(data_dir) or settings.external_url()


@link.command("create")
@_name_argument("name")
@click.option("--expires", metavar="DURATION", help="Expire after e.g. 90m, 2h, 7d (default: never).")
@click.option("--label", help="A name for the link, unique among NAME's active links (default: the date).")
@click.option(
    "--public-url",
    help="How others reach this server (env TRACKER_PUBLIC_URL; default: as the server last started on this data folder).",
)
@click.option(
    "--activity", "activity_id", type=int, default=None,
    help="A link to this one activity of NAME (its id), read-only, instead of the live view.",
)
@_account_folder_options(on_group=False)
@click.pass_context
def link_create(
    ctx: click.Context, name: str, expires: str | None, label: str | None, public_url: str | None,
    activity_id: int | None, data_dir: Path | None,
) -> None:
    """Create a share link for NAME (the live view, or one activity) and print its URL (the token is shown only now)."""
    options = _account_options(ctx, data_dir, name)
    base = _public_url(public_url, options.data_dir)
    try:
        seconds = parse_duration(expires) if expires is not None else None
    except InvalidLink as exc:
        raise click.ClickException(str(exc)) from None
    async def create(accounts: Accounts) -> tuple[str, LinkRecord]:
        if activity_id is not None:
            await _check_activity(options, accounts, name, activity_id)
        return await accounts.create_link(name, label, seconds, activity_id=activity_id)

    token, record = _run(_with_accounts(options, create))
    until = f"expires {_iso(record.expires_ns)}" if record.expires_ns is not None else "never expires"
    click.echo(f"link {record.label!r} for {name}, {until}:", err=True)
    if record.activity_id is None:
        click.echo(f"{base}/watch/{name}?token={token}")
    else:
        click.echo(f"{base}/activity/{record.activity_id}?token={token}")


async def _check_activity(options: CliOptions, accounts: Accounts, name: str, activity_id: int) -> None:
    """Refuse a link to an activity NAME does not have."""
    if not await accounts.user_exists(name):
        raise UnknownUser(f"unknown user {name!r}")
    samples = SampleStore(options.data_dir)
    try:
        await stored_activities.refresh(samples, name)
        row = await stored_activities.get_activity(samples, name, activity_id)
    finally:
        await samples.close()
    if row is None:
        raise click.ClickException(f"{name} has no activity {activity_id}")


@link.command("list")
@_name_argument("name")
@_account_folder_options(on_group=False)
@click.pass_context
def link_list(ctx: click.Context, name: str, data_dir: Path | None) -> None:
    """List NAME's share links: label, what it opens, created, expires, last used, state (tokens are never shown)."""
    records = _records_of(_account_options(ctx, data_dir, name), name, Accounts.list_links)
    if not records:
        click.echo("no links", err=True)
        return
    now = time.time_ns()

    def state(r: Any) -> str:
        if r.revoked_ns is not None:
            return f"revoked {_iso(r.revoked_ns)}"
        if r.expires_ns is not None and r.expires_ns <= now:
            return "expired"
        return "active"

    rows = [
        (r.label, "live view" if r.activity_id is None else f"activity {r.activity_id}", _iso(r.created_ns),
         _iso(r.expires_ns) if r.expires_ns else "never", _iso(r.last_used_ns) if r.last_used_ns else "never", state(r))
        for r in records
    ]  # fmt: skip
    _table(("LABEL", "OPENS", "CREATED", "EXPIRES", "LAST USED", "STATE"), rows)


@link.command("revoke")
@_name_argument("name")
@click.argument("token_or_label")
@_account_folder_options(on_group=False)
@click.pass_context
def link_revoke(ctx: click.Context, name: str, token_or_label: str, data_dir: Path | None) -> None:
    """Revoke NAME's active link named by its TOKEN (or full URL) or its LABEL; open viewers are cut off."""
    options = _account_options(ctx, data_dir, name)
    key = token_or_label
    if "token=" in key:  # the whole share URL pasted
        key = key.split("token=", 1)[1].split("&", 1)[0]
    if not _run(_with_accounts(options, lambda accounts: accounts.revoke_link(name, key))):
        raise click.ClickException(f"{name} has no active link {token_or_label!r}")
    click.echo(f"revoked the link {token_or_label!r} of {name}")


# ----- tracker course -----


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def course(ctx: click.Context, data_dir: Path) -> None:
    """Courses (planned routes) watchers see under the live track."""
    _options(ctx, data_dir)


async def _with_courses(options: CliOptions, name: str, action: Callable[[Accounts, SampleStore], Awaitable[T]]) -> T:
    """Run `action` with the accounts and the sample files, once NAME is known to exist."""

    async def run(accounts: Accounts) -> T:
        await _existing_user(accounts, name)
        samples = SampleStore(options.data_dir, writer_key=f"course-{os.getpid()}")
        try:
            return await action(accounts, samples)
        finally:
            await samples.close()

    return await _with_accounts(options, run)


async def _attach_target(accounts: Accounts, name: str, attach: str) -> str:
    """"now", or the active share link of NAME labelled `attach`, as a course target."""
    if attach == "now":
        return "now"
    now = time.time_ns()
    for record in await accounts.list_links(name):
        if record.label == attach and live_view_refusal(record, now) is None:
            return f"link:{record.id}"
    raise course_files.InvalidCourse(
        f"--attach: {name} has no active live-view share link labelled {attach!r} (or give now)"
    )


@course.command("add")
@_name_argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "course_name", help="The course's name (default: the one in the file, else the file's name).")
@click.option("--attach", metavar="now|LINK_LABEL", help="Show it to everyone watching (now) or to one share link's viewers.")
@_account_folder_options(on_group=False)
@click.pass_context
def course_add(
    ctx: click.Context, name: str, file: Path, course_name: str | None, attach: str | None, data_dir: Path | None
) -> None:
    """Add a course to NAME from FILE: GPX (rte, or trk without times), TCX or FIT course, GeoJSON
    LineString or Tracker's JSON; a recorded activity file gives its route, thinned."""
    options = _account_options(ctx, data_dir, name)
    try:
        settings = Settings.from_env(data_dir=options.data_dir)
        planned = course_files.course_from_upload(
            file.read_bytes(), file.name, course_name, max_inflated=settings.max_decompressed_size
        )
    except (ValueError, OSError) as exc:  # the file's faults, named by the parser
        raise click.ClickException(_one_line(exc)) from None

    async def add(accounts: Accounts, samples: SampleStore) -> tuple[stored_courses.CourseRecord, str | None]:
        target = await _attach_target(accounts, name, attach) if attach is not None else None
        record = await stored_courses.add_course(samples, name, planned, time.time_ns(), course_files.MAX_COURSES)
        if record is None:
            raise course_files.InvalidCourse(f"{name} has {course_files.MAX_COURSES} courses already: remove one first")
        if target is not None:
            await stored_courses.attach(samples, name, record.id, target)
        return record, target

    record, target = _run(_with_courses(options, name, add))
    shown = f", shown on {target}" if target else ""
    click.echo(f"course {record.id} {record.name!r} of {name}: {record.point_count} points, {record.distance_m / 1000:.2f} km{shown}")


@course.command("list")
@_name_argument("name")
@_account_folder_options(on_group=False)
@click.pass_context
def course_list(ctx: click.Context, name: str, data_dir: Path | None) -> None:
    """List NAME's courses, newest first, and where each is shown."""

    async def listing(
        accounts: Accounts, samples: SampleStore
    ) -> tuple[list[stored_courses.CourseRecord], dict[str, int]]:
        return await stored_courses.list_courses(samples, name), await stored_courses.attachments(samples, name)

    records, attached = _run(_with_courses(_account_options(ctx, data_dir, name), name, listing))
    if not records:
        click.echo("no courses", err=True)
        return
    rows = [
        (str(r.id), r.name, str(r.point_count), f"{r.distance_m / 1000:.2f}", _iso(r.created_ns),
         ", ".join(target for target, course_id in attached.items() if course_id == r.id) or "-")
        for r in records
    ]  # fmt: skip
    _table(("ID", "NAME", "POINTS", "KM", "CREATED", "SHOWN ON"), rows)


@course.command("remove")
@_name_argument("name")
@click.argument("course_id", metavar="ID", type=int)
@_account_folder_options(on_group=False)
@click.pass_context
def course_remove(ctx: click.Context, name: str, course_id: int, data_dir: Path | None) -> None:
    """Delete NAME's course ID (and stop showing it anywhere)."""

    async def remove(accounts: Accounts, samples: SampleStore) -> bool:
        return await stored_courses.delete_course(samples, name, course_id)

    if not _run(_with_courses(_account_options(ctx, data_dir, name), name, remove)):
        raise click.ClickException(f"{name} has no course {course_id}")
    click.echo(f"removed course {course_id} of {name}")


# ----- tracker import -----


@cli.command("import")
@click.argument("arguments", nargs=-1, required=True, metavar="USER FILE... | --by-database FILE...")
@click.option("--by-database", is_flag=True, help="Import each CONTEXT-DATABASE into the user of that name.")
@click.option("--create-users", is_flag=True, help="With --by-database: create missing users (a random password each, shown).")
@click.option(
    "--precision", type=click.Choice(["ns", "u", "us", "ms", "s", "m", "h"]), default="ns", show_default=True,
    help="Timestamp precision of the lines (influx_inspect export writes ns).",
)
@_data_dir_option(on_group=True)
@click.pass_context
def import_command(
    ctx: click.Context, arguments: tuple[str, ...], by_database: bool, create_users: bool, precision: str, data_dir: Path
) -> None:
    """Import line-protocol files (influx_inspect export, influx -import, or plain; gzipped or not)
    into USER, or with --by-database into the users named by the files' CONTEXT-DATABASE lines.
    GPX, TCX and FIT files (told by their content) are imported into USER as activities.

    Lines are held to the vocabulary, the user's retention and the clock as /write holds them;
    each one not stored is reported by its line number and counted. Works while the server runs.
    An interrupted import goes on from its last committed line when run again; a finished one
    imported again stores nothing twice.
    """
    options = _options(ctx, data_dir)
    if create_users and not by_database:
        raise click.UsageError("--create-users goes with --by-database")
    user_name = None if by_database else arguments[0]
    paths = [Path(a) for a in (arguments if by_database else arguments[1:])]
    if not paths:
        raise click.UsageError("no FILE given")
    for path in paths:
        if not path.is_file():
            raise click.ClickException(f"no such file: {path}")
    try:
        settings = Settings.from_env(data_dir=options.data_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    activity_files = [path for path in paths if _activity_format(path) is not None]
    stored = refused = 0
    if activity_files:
        if user_name is None:
            raise click.UsageError(f"{activity_files[0]} is an activity file: import it into a USER, not --by-database")
        activity_summaries = _run(_import_activity_files(options, settings, user_name, activity_files))
        stored += sum(summary.stored for summary in activity_summaries)
        refused += sum(summary.points - summary.stored for summary in activity_summaries)
        paths = [path for path in paths if path not in activity_files]
    if paths:
        summaries = _run(_import(options, settings, user_name, paths, create_users, precision))
        for summary in summaries:
            resumed = f" (resumed after line {summary.resumed_after_line})" if summary.resumed_after_line else ""
            users = ", ".join(f"{name}: {count}" for name, count in sorted(summary.by_database.items()))
            _echo_stored(
                f"{summary.path}{resumed}", summary.stored, summary.data_lines, "lines", summary.seconds,
                refused=summary.refused, detail=f" ({users})" if users else "",
            )  # fmt: skip
        _echo_stored(
            f"imported {len(summaries)} file(s)", sum(s.stored for s in summaries),
            sum(s.data_lines for s in summaries), "lines", sum(s.seconds for s in summaries),
            refused=sum(s.refused for s in summaries),
        )  # fmt: skip
        stored += sum(s.stored for s in summaries)
        refused += sum(s.refused for s in summaries)
    if refused:
        ctx.exit(1 if stored == 0 else 0)  # status 1 when something was refused and nothing stored


def _echo_stored(
    what: str, stored: int, total: int, unit: str, seconds: float, *, refused: int, detail: str = ""
) -> None:
    """The summary line of an import (a file's, or the whole run's), for line protocol and activity files alike."""
    rate = total / seconds if seconds > 0 else 0.0
    click.echo(
        f"{what}: {stored} of {total} {unit} stored in {seconds:.1f} s ({rate:,.0f} {unit}/s), {refused} refused{detail}"
    )


@contextlib.asynccontextmanager
async def _import_stores(
    options: CliOptions, settings: Settings, user_name: str | None
) -> AsyncIterator[tuple[Accounts, SampleStore]]:
    """The accounts and sample stores an import writes through; `user_name` (when given) must exist
    before any file is read. Closing drains the store: everything written is committed."""
    store = await AccountStore.open(options.data_dir)
    accounts = Accounts(
        store, cache_seconds=0, password_context=options.password_context, default_retention_ns=settings.retention_ns
    )
    # A writer of its own in the shared journal: a running server's workers write beside it, and
    # their live views see the imported samples as they are committed.
    samples = SampleStore(
        options.data_dir, synchronous=settings.sqlite_synchronous, writer_key=f"import-{os.getpid()}"
    )
    try:
        if user_name is not None and not await accounts.user_exists(user_name):
            raise UnknownUser(f"unknown user {user_name!r}")
        yield accounts, samples
    finally:
        await samples.close()
        await store.close()


def _progress_bar(label: str, total: int, unit: str, rate_unit: str) -> ProgressBar | None:
    """A bar on stderr when it is a terminal (stdout carries the summary)."""
    return ProgressBar(sys.stderr, label, total, unit, rate_unit) if sys.stderr.isatty() else None


async def _import(
    options: CliOptions, settings: Settings, user_name: str | None, paths: list[Path], create_users: bool, precision: str
) -> list[importer.FileSummary]:
    async with _import_stores(options, settings, user_name) as (accounts, samples):
        return await _import_lines(options, settings, accounts, samples, user_name, paths, create_users, precision)


async def _import_lines(
    options: CliOptions, settings: Settings, accounts: Accounts, samples: SampleStore, user_name: str | None,
    paths: list[Path], create_users: bool, precision: str,
) -> list[importer.FileSummary]:
    known: dict[str | None, tuple[str | None, str | None]] = {}

    async def target(database: str | None) -> tuple[str | None, str | None]:
        if database in known:
            return known[database]
        if user_name is not None:
            answer: tuple[str | None, str | None] = (user_name, None)
        elif database is None:
            answer = (None, "no CONTEXT-DATABASE line before it (--by-database needs one)")
        elif await accounts.user_exists(database):
            answer = (database, None)
        elif not create_users:
            answer = (None, f"no user {database!r} (--create-users creates one)")
        else:
            try:
                password = secrets.token_urlsafe(12)
                await accounts.add_user(database, password)
            except InvalidUsername as exc:
                answer = (None, _one_line(exc))
            else:
                click.echo(f"created user {database!r} with password {password} (change it: tracker user passwd)")
                answer = (database, None)
        known[database] = answer
        return answer

    async def write(user: str, points: list[Any]) -> None:
        await samples.write(user, points)

    async def cutoff(user: str) -> Cutoff:
        return Cutoff.at(await accounts.retention_ns(user), time.time_ns(), settings.max_future_ns)

    summaries: list[importer.FileSummary] = []
    for path in paths:
        summaries.append(await importer.import_file(
            path, data_dir=options.data_dir, target=target, write=write, cutoff=cutoff, precision=precision,
            max_line_length=settings.max_line_length, report=lambda text: click.echo(text, err=True),
            progress=_progress_bar(path.name, path.stat().st_size, BYTES, "lines"),
            progress_key=user_name or "--by-database",
        ))  # fmt: skip
    return summaries


def _activity_format(path: Path) -> str | None:
    with path.open("rb") as file:
        head = file.read(4096)
    if head[:2] == importer.GZIP_MAGIC:  # a gzipped activity file (Strava's bulk export) or line protocol
        with gzip.open(path, "rb") as inflated:
            try:
                head = inflated.read(4096)
            except (OSError, EOFError):
                return None  # the line-protocol import says what is wrong with it
    return formats.detect(head)


async def _import_activity_files(
    options: CliOptions, settings: Settings, user_name: str, paths: list[Path]
) -> list[transfer.ImportSummary]:
    """GPX, TCX and FIT files into `user_name`: read, then stored in big batches, with a summary per file."""
    summaries: list[transfer.ImportSummary] = []
    async with _import_stores(options, settings, user_name) as (accounts, samples):
        for path in paths:
            data = await asyncio.to_thread(path.read_bytes)
            tracks = await asyncio.to_thread(formats.read, data, path.name)
            cutoff = Cutoff.at(await accounts.retention_ns(user_name), time.time_ns(), settings.max_future_ns)
            total = sum(len(track.points) for track in tracks if track.kind == "activity")

            async def write(points: list[Any]) -> None:
                await samples.write(user_name, points)

            bar = _progress_bar(path.name, total, "points", "points")
            summary = await transfer.import_tracks(
                path.name, tracks, write=write, cutoff=cutoff, progress=bar.advance if bar is not None else None
            )
            if bar is not None:
                bar.finish()
            await transfer.note_activities(samples, user_name, tracks, summary)
            _echo_import_summary(summary)
            summaries.append(summary)
    return summaries


def _echo_import_summary(summary: transfer.ImportSummary) -> None:
    _echo_stored(
        f"{summary.filename} ({summary.format.upper()})", summary.stored, summary.points, "points", summary.seconds,
        refused=summary.points - summary.stored,
    )
    for track in summary.tracks:
        what = f"{track['points']} points, {track['start']} to {track['end']}" if track["kind"] == "activity" else (
            f"a course of {track['points']} points (not stored as samples)"
        )
        tags = ", ".join(f"{key}={track[key]}" for key in ("device", "sport") if track[key])
        click.echo(f"  {track['name'] or 'unnamed'}{f' ({tags})' if tags else ''}: {what}")
    for reason, count in sorted(summary.refused.items()):
        click.echo(f"  not stored: {count} points: {reason}")
    if summary.unmapped:
        click.echo("  not mapped: " + ", ".join(f"{name} ({count})" for name, count in sorted(summary.unmapped.items())))
    for activity in summary.activities:
        click.echo(f"  activity {activity['id']}: {activity['name']}, {activity['start']} to {activity['end']}")


# ----- tracker export -----


@cli.command("export")
@click.argument("user_name", metavar="USER")
@click.option("--format", "fmt", type=click.Choice(formats.EXPORT_FORMATS), required=True, help="The file's format.")
@click.option("--start", default=None, help="From this time (RFC 3339 or ns since the epoch); default: the first sample.")
@click.option("--end", default=None, help="Up to this time, not included (RFC 3339 or ns); default: after the last sample.")
@click.option("--device", default=None, help="Only this device's samples (\"\" for samples without one).")
@click.option("--sport", default=None, help="Only this sport's samples (\"\" for samples without one).")
@click.option(
    "--activity", "activity_id", type=int, default=None,
    help="One activity (its id, as the API and the page show it): its device, sport and span; not with --start/--end/--device/--sport.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here, not to stdout.")
@_data_dir_option(on_group=True)
@click.pass_context
def export_command(
    ctx: click.Context, user_name: str, fmt: str, start: str | None, end: str | None, device: str | None,
    sport: str | None, activity_id: int | None, output: Path | None, data_dir: Path,
) -> None:
    """Export USER's samples of a time range (or of one device and sport, or one activity) as GPX, TCX, FIT, CSV or GeoJSON."""
    options = _options(ctx, data_dir)
    if activity_id is not None and any(value is not None for value in (start, end, device, sport)):
        raise click.UsageError("--activity says the range and the track itself: leave out --start, --end, --device and --sport")
    try:
        start_ns = transfer.parse_time(start, "start", transfer.MIN_TIME_NS)
        end_ns = transfer.parse_time(end, "end", transfer.MAX_TIME_NS)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    data = _run(_export(options, user_name, fmt, start_ns, end_ns, device, sport, activity_id))
    if output is None:
        click.echo(data, nl=False)  # bytes: written to the binary stdout as they are
    else:
        output.write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {output}", err=True)


async def _export(
    options: CliOptions, user_name: str, fmt: str, start_ns: int, end_ns: int, device: str | None, sport: str | None,
    activity_id: int | None = None,
) -> bytes:
    store = await AccountStore.open(options.data_dir)
    accounts = Accounts(store, cache_seconds=0, password_context=options.password_context)
    samples = SampleStore(options.data_dir)
    try:
        if not await accounts.user_exists(user_name):
            raise UnknownUser(f"unknown user {user_name!r}")
        if activity_id is not None:
            await stored_activities.refresh(samples, user_name)
            row = await stored_activities.get_activity(samples, user_name, activity_id)
            if row is None:
                raise click.ClickException(f"{user_name} has no activity {activity_id}")
            # The activity's end is its last sample; the export's end is exclusive.
            start_ns, end_ns, device, sport = row.start_ns, row.end_ns + 1, row.device, row.sport
        return (await transfer.export_file(samples, user_name, fmt, start_ns, end_ns, device=device, sport=sport)).data
    finally:
        await samples.close()
        await store.close()


# ----- backups and checks -----


@cli.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write into DEST even if it is not empty (same-named files are replaced).")
@_data_dir_option(on_group=True)
def backup_command(dest: Path, force: bool, data_dir: Path) -> None:
    """Copy every database into the folder DEST, consistently, while the server runs.

    Uses SQLite's online backup API: each file is one snapshot, and writes go on meanwhile.
    DEST gets accounts.sqlite, users/NAME.sqlite and manifest.json (time, files, schema versions).
    """
    try:
        manifest = backups.backup(data_dir, dest, force=force)
    except EXPECTED_ERRORS as exc:
        raise click.ClickException(_one_line(exc)) from None
    for entry in manifest["files"]:
        click.echo(f"{entry['path']}  schema {entry['schema_version']}  {entry['bytes']} bytes")
    click.echo(f"backed up {len(manifest['files'])} file(s) into {dest} ({backups.MANIFEST} written last)")


@cli.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", "--yes", "-y", is_flag=True, help="Replace the databases already in the data folder.")
@_data_dir_option(on_group=True)
def restore_command(source: Path, force: bool, data_dir: Path) -> None:
    """Put the backup in SOURCE back into the data folder (stop the server first).

    The backup is verified first (manifest, SHA-256, integrity check, schema version); each file is
    copied beside its place and renamed over it. A data folder that already holds databases is
    refused unless --force, and one in use by a running server always is.
    """
    try:
        restored, left = backups.restore(source, data_dir, force=force)
    except EXPECTED_ERRORS as exc:
        raise click.ClickException(_one_line(exc)) from None
    for relative in restored:
        click.echo(f"restored {relative}")
    for relative in left:
        click.echo(f"left in place (not in the backup): {relative}", err=True)
    click.echo(f"restored {len(restored)} file(s) into {data_dir}")


@cli.command("check")
@click.option("--quick", is_flag=True, help="SQLite's quick_check instead of the full integrity_check (faster).")
@_data_dir_option(on_group=True)
def check_command(quick: bool, data_dir: Path) -> None:
    """Verify every file of the data folder: one line each, exit status 1 on any problem.

    Each database gets SQLite's integrity check and a schema version this Tracker knows; anything
    else in the folder is reported as unexpected. Safe while the server runs.
    """
    try:
        lines = backups.check(data_dir, quick=quick)
    except EXPECTED_ERRORS as exc:
        raise click.ClickException(_one_line(exc)) from None
    for line in lines:
        if line.problem is None:
            click.echo(f"ok       {line.path}: {line.detail}")
        else:
            click.echo(f"PROBLEM  {line.path}: {_one_line(Exception(line.problem))}")
    problems = sum(line.problem is not None for line in lines)
    if problems:
        raise click.ClickException(f"{problems} of {len(lines)} file(s) have problems")
    click.echo(f"all {len(lines)} file(s) are sound", err=True)


# ----- device tokens -----


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def token(ctx: click.Context, data_dir: Path) -> None:
    """Device tokens: let a phone or script write NAME's samples without NAME's password (never read)."""
    _options(ctx, data_dir)


@token.command("create")
@_name_argument("name")
@click.option("--label", required=True, help="The device's name, unique among NAME's tokens; also its samples' device tag.")
@click.option(
    "--speed-unit",
    type=click.Choice(SPEED_UNITS),
    default="knots",
    show_default=True,
    help="How the device sends speed where its protocol leaves the unit open.",
)
@click.option("--setup", is_flag=True, help="Also print what to enter in each app (OsmAnd, Traccar Client, ...).")
@click.option(
    "--public-url",
    help="With --setup: how the phone reaches this server (env TRACKER_PUBLIC_URL; default: as the server last started).",
)
@_account_folder_options(on_group=False)
@click.pass_context
def token_create(
    ctx: click.Context, name: str, label: str, speed_unit: str, setup: bool, public_url: str | None, data_dir: Path | None
) -> None:
    """Create a device token for NAME and print it (it is shown only now)."""
    options = _account_options(ctx, data_dir, name)
    secret, record = _run(_with_accounts(options, lambda accounts: accounts.create_token(name, label, speed_unit)))
    click.echo(f"device token {record.label!r} for {name} (write only; shown only now):", err=True)
    click.echo(secret)
    if setup:
        # On stderr, like the note above: stdout stays the token alone, for scripts.
        base = _public_url(public_url, options.data_dir)
        for app in device_setup(base, name, secret, record.label, record.speed_unit):
            click.echo(f"\n{app.name}: {app.where}", err=True)
            for item in app.settings:
                click.echo(f"  {item.name}: {item.value}", err=True)
            click.echo(f"  Speed: {app.speed}", err=True)


@token.command("list")
@_name_argument("name")
@_account_folder_options(on_group=False)
@click.pass_context
def token_list(ctx: click.Context, name: str, data_dir: Path | None) -> None:
    """List NAME's device tokens: label, created, last used, last sample, device last seen, speed unit, state.

    The tokens themselves are never shown.
    """
    options = _account_options(ctx, data_dir, name)
    records = _records_of(options, name, Accounts.list_tokens)
    if not records:
        click.echo("no device tokens", err=True)
        return

    async def devices() -> dict[str | None, int]:
        samples = SampleStore(options.data_dir)
        try:
            return await device_last_seen(samples, name)
        finally:
            await samples.close()

    # LAST SAMPLE: the newest sample this token wrote; DEVICE SEEN: the newest sample tagged with its
    # label, however it came in (another token, a password, a phone app).
    seen = _run(devices())
    rows = [
        (r.label, _iso(r.created_ns), _iso(r.last_used_ns) if r.last_used_ns else "never",
         _iso(r.last_sample_ns) if r.last_sample_ns else "never",
         _iso(seen[r.label]) if r.label in seen else "never", r.speed_unit,
         f"revoked {_iso(r.revoked_ns)}" if r.revoked_ns is not None else "active")
        for r in records
    ]  # fmt: skip
    _table(("LABEL", "CREATED", "LAST USED", "LAST SAMPLE", "DEVICE SEEN", "SPEED", "STATE"), rows)


@token.command("revoke")
@_name_argument("name")
@click.argument("label_or_token")
@_account_folder_options(on_group=False)
@click.pass_context
def token_revoke(ctx: click.Context, name: str, label_or_token: str, data_dir: Path | None) -> None:
    """Revoke NAME's active device token named by its LABEL (or the token); a running server refuses it at once."""
    options = _account_options(ctx, data_dir, name)
    if not _run(_with_accounts(options, lambda accounts: accounts.revoke_token(name, label_or_token))):
        raise click.ClickException(f"{name} has no active device token {label_or_token!r}")
    click.echo(f"revoked the device token {label_or_token!r} of {name}")


# ----- tracker invite -----


@cli.group()
@_data_dir_option(on_group=True)
@click.pass_context
def invite(ctx: click.Context, data_dir: Path) -> None:
    """Invite codes for POST /register when the server runs with --registration invite."""
    _options(ctx, data_dir)


@invite.command("create")
@click.option("--uses", type=click.IntRange(1, 1_000_000), default=1, show_default=True, help="How many accounts it makes.")
@_data_dir_option(on_group=False)
@click.pass_context
def invite_create(ctx: click.Context, uses: int, data_dir: Path | None) -> None:
    """Create an invite code and print it (it is shown only now)."""
    options = _options(ctx, data_dir)
    code, record = _run(_with_accounts(options, lambda accounts: accounts.create_invite(uses), create=True))
    click.echo(f"invite {record.id}, good for {uses} account{'' if uses == 1 else 's'} (shown only now):", err=True)
    click.echo(code)


@invite.command("list")
@_data_dir_option(on_group=False)
@click.pass_context
def invite_list(ctx: click.Context, data_dir: Path | None) -> None:
    """List invites: id, created, uses, uses left (the codes themselves are never shown)."""
    options = _options(ctx, data_dir)
    records = _run(_with_accounts(options, lambda accounts: accounts.list_invites()))
    if not records:
        click.echo("no invites", err=True)
        return
    rows = [(str(r.id), _iso(r.created_ns), str(r.uses), str(r.uses_left)) for r in records]
    _table(("ID", "CREATED", "USES", "LEFT"), rows)


@invite.command("revoke")
@click.argument("invite_id", type=int)
@_data_dir_option(on_group=False)
@click.pass_context
def invite_revoke(ctx: click.Context, invite_id: int, data_dir: Path | None) -> None:
    """Use up what is left of invite INVITE_ID: it makes no more accounts."""
    options = _options(ctx, data_dir)
    if not _run(_with_accounts(options, lambda accounts: accounts.revoke_invite(invite_id))):
        raise click.ClickException(f"no invite {invite_id} with uses left")
    click.echo(f"revoked invite {invite_id}")


# ----- tracker alert -----


@cli.group()
@_account_folder_options(on_group=True)
@click.pass_context
def alert(ctx: click.Context, data_dir: Path) -> None:
    """Gone-quiet alerts: a webhook is told when a live user (or device) sends nothing for a while."""
    _options(ctx, data_dir)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


@alert.command("set")
@_name_argument("name")
@click.option("--after", required=True, metavar="DURATION", help="Quiet time before the alert fires, e.g. 10m, 90s, 1h.")
@click.option("--webhook", required=True, metavar="URL", help="http:// or https:// URL the alert POSTs JSON to.")
@click.option("--device", metavar="LABEL", help="Watch only this device (its `device` tag); default: any device.")
@_account_folder_options(on_group=False)
@click.pass_context
def alert_set(
    ctx: click.Context, name: str, after: str, webhook: str, device: str | None, data_dir: Path | None
) -> None:
    """Create or change NAME's alert (for one device with --device); a running server picks it up."""
    options = _account_options(ctx, data_dir, name)
    try:
        settings = Settings.from_env()
        seconds = parse_quiet_time(after, settings.alert_min_quiet_seconds)
        webhook = validate_webhook_url(webhook)
    except ValueError as exc:  # a bad TRACKER_* variable too
        raise click.ClickException(str(exc)) from None
    # The server checks again on every delivery; this tells whoever sets the alert at once.
    destinations = WebhookDestinations(allow_private=settings.webhook_allow_private)
    _run(destinations.check_url(webhook, timeout=settings.alert_timeout_seconds))
    record = _run(_with_accounts(options, lambda accounts: accounts.set_alert(name, device, seconds, webhook)))
    what = f"device {record.device!r} of {name}" if record.device else f"{name} (any device)"
    click.echo(f"alert set: {what} quiet for {_minutes(record.quiet_seconds)} -> POST {record.webhook_url}")


@alert.command("list")
@_name_argument("name")
@_account_folder_options(on_group=False)
@click.pass_context
def alert_list(ctx: click.Context, name: str, data_dir: Path | None) -> None:
    """List NAME's alerts: device, quiet time, webhook, whether it fired, and the last delivery."""
    records = _records_of(_account_options(ctx, data_dir, name), name, Accounts.list_alerts)
    if not records:
        click.echo("no alerts", err=True)
        return

    def delivery(r: Any) -> str:
        if r.delivery_state is None:
            return "none yet"
        text = f"{r.delivery_kind} {r.delivery_state} {_iso(r.delivery_ns)} after {r.delivery_attempts} attempt(s)"
        return text + (f": {r.delivery_error}" if r.delivery_error else "")

    rows = [
        (r.device or "(any)", _minutes(r.quiet_seconds), r.webhook_url,
         f"fired {_iso(r.fired_ns)}" if r.fired_ns else "-", delivery(r))
        for r in records
    ]  # fmt: skip
    _table(("DEVICE", "AFTER", "WEBHOOK", "QUIET", "LAST DELIVERY"), rows)


@alert.command("remove")
@_name_argument("name")
@click.option("--device", metavar="LABEL", help="Remove this device's alert; default: the any-device alert.")
@_account_folder_options(on_group=False)
@click.pass_context
def alert_remove(ctx: click.Context, name: str, device: str | None, data_dir: Path | None) -> None:
    """Remove NAME's alert (the one for --device, or the one for any device)."""
    options = _account_options(ctx, data_dir, name)

    async def remove(accounts: Accounts) -> bool:
        await _existing_user(accounts, name)
        return await accounts.remove_alert(name, device)

    what = f"device {device!r} of {name}" if device else f"{name} (any device)"
    if not _run(_with_accounts(options, remove)):
        raise click.ClickException(f"no alert for {what}")
    click.echo(f"removed the alert for {what}")


# ----- sharding by user -----


_MAP_OPTION = click.option(
    "--map", "map_path", required=True, type=click.Path(dir_okay=False, path_type=Path), envvar=SHARD_MAP_ENV,
    help=f"The shard map (env {SHARD_MAP_ENV}): 'shard NAME HOST:PORT [DATA_DIR]' lines, one 'default SHARD' line, "
    "then 'USER SHARD' lines.",
)  # fmt: skip


def _read_map(path: Path) -> shards.ShardMap:
    try:
        return shards.read_map(path)
    except shards.InvalidShardMap as exc:
        raise click.ClickException(_one_line(exc)) from None


@cli.group()
def shard() -> None:
    """Several Tracker instances behind one proxy, each holding its own users."""


@shard.command("which")
@click.argument("name")
@_MAP_OPTION
def shard_which(name: str, map_path: Path) -> None:
    """Print the shard that holds user NAME, and its address."""
    shard_map = _read_map(map_path)
    try:
        validate_username(name)
    except ValueError as exc:
        raise click.ClickException(_one_line(exc)) from None
    owner = shard_map.shard_of(name)
    click.echo(f"{owner} {shard_map.shards[owner]}")


@shard.command("haproxy-config")
@_MAP_OPTION
@click.option("--bind", default="127.0.0.1:8086", show_default=True, help="Where the proxy listens (HAProxy's bind).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write haproxy.cfg and users.map into.")  # fmt: skip
def shard_haproxy_config(map_path: Path, bind: str, out: Path) -> None:
    """Write haproxy.cfg and users.map for the shard map into the folder OUT."""
    shard_map = _read_map(map_path)
    out.mkdir(parents=True, exist_ok=True)
    users_map = out.resolve() / shards.USERS_MAP
    users_map.write_text(shards.haproxy_users_map(shard_map))
    (out / "haproxy.cfg").write_text(shards.haproxy_config(shard_map, bind=bind, users_map_path=users_map))
    click.echo(f"wrote {out / 'haproxy.cfg'} and {users_map} ({len(shard_map.users)} user(s), {len(shard_map.shards)} shard(s))")


def _map_data_dir(shard_map: shards.ShardMap, shard_name: str, map_path: Path, if_none: str) -> Path:
    """The data folder the map gives shard `shard_name`; refused, with `if_none` said, when it gives none."""
    if shard_name not in shard_map.shards:
        raise click.ClickException(f"no shard {shard_name!r} in {map_path} (shards: {', '.join(shard_map.shards)})")
    folder = shard_map.data_dirs.get(shard_name)
    if folder is None:
        address = shard_map.shards[shard_name]
        raise click.ClickException(f"shard {shard_name} ({address}) has no data folder in {map_path}: {if_none}")
    if not folder.is_dir():
        # Never made on the fly: a mistyped folder in the map must not become an empty new shard.
        raise click.ClickException(f"{folder}, shard {shard_name}'s data folder in {map_path}, is not a folder here")
    return folder


@shard.command("move")
@click.argument("name")
@_MAP_OPTION
@click.option("--to", "to_shard", required=True, help="The shard (its name in the map) that is to hold NAME.")
@click.option("--from-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The data folder of the shard that holds NAME now (default: from its line in the map).")
@click.option("--to-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The data folder of the target shard (default: from its line in the map).")
@click.option("--proxy-dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The folder `shard haproxy-config` wrote (its users.map and HAProxy's admin.sock).")
@click.option("--drain-seconds", default=2.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="How long requests already passed to the source may take to finish.")
@click.pass_context
def shard_move(ctx: click.Context, name: str, map_path: Path, to_shard: str, from_dir: Path | None,
               to_dir: Path | None, proxy_dir: Path, drain_seconds: float) -> None:  # fmt: skip
    """Move user NAME to another shard while both serve: hold, copy, verify, switch, remove.

    NAME's requests get 503 with Retry-After from the proxy for the final copy (a few seconds);
    every other user is untouched. The map file and users.map are updated, then the source's copy
    of NAME (account and samples) is deleted.
    """
    shard_map = _read_map(map_path)
    try:
        from_shard = shard_map.shard_of(validate_username(name))
    except ValueError as exc:
        raise click.ClickException(_one_line(exc)) from None
    from_dir = from_dir or _map_data_dir(shard_map, from_shard, map_path, "give --from-dir")
    to_dir = to_dir or _map_data_dir(shard_map, to_shard, map_path, "give --to-dir")
    try:
        copied = shards.move_user(
            name, map_path=map_path, to_shard=to_shard, source_dir=from_dir, target_dir=to_dir,
            proxy=shards.ProxyControl(proxy_dir), drain_seconds=drain_seconds, say=click.echo,
        )  # fmt: skip
    except (shards.MoveError, shards.InvalidShardMap, ValueError, OSError) as exc:
        raise click.ClickException(_one_line(exc)) from None
    removed = _run(_delete_account_and_files(_options(ctx, from_dir), name))
    click.echo(f"moved {name} to shard {to_shard}: {copied.samples} sample(s) verified; "
               f"removed the account and {len(removed)} file(s) from {from_dir}")  # fmt: skip


def main() -> None:
    cli(prog_name="tracker")

