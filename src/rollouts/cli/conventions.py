"""The command-line conventions a kubectl user expects, applied to the whole `rollouts` command tree:

- usage errors are one line (`error: ...`) followed by the usage line, not a framed box;
- boolean flags also take cobra's `--flag=true` / `--flag=false` spelling (`get ro x --watch=false`, `-w=false`);
- every command's help ends with an Examples section (the texts live in rollouts.cli.examples);
- help is plain text (no boxes), so it reads the same in a terminal, a pipe and a CI log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer.core
from typer._click.core import Command, Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command of the tree with its path of names (the root's path is empty)."""
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from walk(sub, (*path, name))


def _target(root: Command, args: Sequence[str]) -> Command:
    """The (sub)command that `args` invoke: follow leading words that name subcommands."""
    command = root
    for arg in args:
        if arg.startswith("-"):  # the root's own options may come before the verb
            continue
        commands = getattr(command, "commands", None) or {}
        if arg not in commands:
            break
        command = commands[arg]
    return command


def _flag_spelling(command: Command, option: str, value: str) -> list[str] | None:
    """How `--option=value` is written for a boolean flag (`[]` drops it), None when it is not one."""
    for param in command.params:
        if not getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        primary = list(getattr(param, "opts", []))
        secondary = list(getattr(param, "secondary_opts", []))
        word = value.lower()
        if option in primary:
            on, off = option, (secondary[0] if secondary else None)
        elif option in secondary:  # `--no-watch=false` means watch
            on, off = option, (primary[0] if primary else None)
        else:
            continue
        if word in TRUE_WORDS:
            return [on]
        if word in FALSE_WORDS:
            return [off] if off else []
        return None
    return None


def normalize_flags(root: Command, args: Sequence[str]) -> list[str]:
    """Rewrites `--flag=true|false` for the boolean flags of the invoked command; the rest is unchanged."""
    command = _target(root, args)
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":  # what follows is arguments, never options
            out.extend(args[index:])
            break
        if arg.startswith("-") and "=" in arg:  # `--watch=false`, and pflag's `-w=false` too
            option, _, value = arg.partition("=")
            spelled = _flag_spelling(command, option, value)
            if spelled is not None:
                out.extend(spelled)
                continue
        out.append(arg)
    return out


def attach_examples(root: Command) -> None:
    """Sets every command's epilog to its Examples section and makes its help plain text."""
    from rollouts.cli.examples import examples_for

    for path, command in walk(root):
        if hasattr(command, "rich_markup_mode"):
            command.rich_markup_mode = None
        text = examples_for(path)
        if text and not command.epilog:
            command.epilog = text


def usage_line(ctx: Context | None) -> str:
    return ctx.get_usage() if ctx is not None else "Usage: rollouts [OPTIONS] COMMAND [ARGS]..."


def one_line_error(exc: UsageError) -> str:
    """`error: <what>` then the usage line, as kubectl prints a usage error."""
    message = " ".join(exc.format_message().split())
    first = message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
    return f"error: {first}\n{usage_line(exc.ctx)}"


class RolloutsGroup(typer.core.TyperGroup):
    """The root group: applies the conventions above around typer's own entry point."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        attach_examples(self)
        argv = normalize_flags(self, list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # `rollouts` alone: the help, as a usage error
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            print(one_line_error(exc), file=sys.stderr)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)
