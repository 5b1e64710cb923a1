"""What every ``enclave`` command shares: the consoles, one-line errors, the operator, ``--as``.

Every error a user can cause ends with one line on stderr and a non-zero exit: a command wraps its
body in :func:`run`, which turns :class:`~enclave.domain.errors.EnclaveError` and :class:`CliError`
into that line.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from enclave.config import load_settings
from enclave.domain.errors import EnclaveError, InvalidInput
from enclave.domain.identity.accounts import Actor
from enclave.wiring import Services, build_services

# Piped output (scripts, CI logs) gets wide tables instead of ones cut at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class CliError(Exception):
    """A one-line reason to stop, printed without a traceback."""


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def operator() -> Actor:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return Actor.operator(name)


@contextmanager
def services(*, migrate: bool = True) -> Iterator[Services]:
    built = build_services(load_settings(), migrate=migrate)
    try:
        yield built
    finally:
        built.close()


def run(fn: Callable[[], T]) -> T:
    """Run a command body, turning user-caused errors into one line and exit code 1."""
    try:
        return fn()
    except EnclaveError as exc:
        raise fail(exc.detail) from None
    except CliError as exc:
        raise fail(str(exc)) from None


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m' -> a timedelta."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise InvalidInput(f"cannot read duration {text!r}: use a number and d, h or m (e.g. 30d)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"cannot read date {text!r}: use YYYY-MM-DD") from None


def read_text(path: Path) -> str:
    """A UTF-8 text file the user named, or a one-line reason why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def console_print(text: str) -> None:
    out.print(text, highlight=False)


AsUser = Annotated[str, typer.Option("--as", help="act as this user (their rights; audited with your name)")]


def as_user(s: Services, username: str) -> Actor:
    user = s.identity.get_user(operator(), username)
    os_user = operator().name.removeprefix("operator:")
    return Actor.on_behalf(user, os_user)
