"""The `critic` command: Typer app with one sub-app per command group.

Heavy imports (torch, transformers) happen inside commands so `critic --help`
stays instant.
"""

from __future__ import annotations

import os
import sys

import typer

from critic.commands import annotate as annotate_commands
from critic.commands import audit as audit_commands
from critic.commands import data as data_commands
from critic.commands import dismiss as dismiss_commands
from critic.commands import eval as eval_commands
from critic.commands import model as model_commands
from critic.commands import review as review_commands
from critic.commands import train as train_commands

app = typer.Typer(
    name="critic",
    help="Train and run LLM code critics (CriticGPT recipe, Gemma 2 architecture).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("review")(review_commands.review)
app.command("dismiss")(dismiss_commands.dismiss)
app.command("eval")(eval_commands.eval_command)
app.command("audit")(audit_commands.audit)
app.add_typer(model_commands.app, name="model")
app.add_typer(data_commands.app, name="data")
app.add_typer(train_commands.app, name="train")
app.add_typer(annotate_commands.app, name="annotate")


def main() -> None:
    """Entry point: known failures become `critic: error: ...` and exit 2."""
    from critic.core.errors import CheckpointError, UserError

    try:
        app(args=expand_optional_values(sys.argv[1:]))
    except (UserError, CheckpointError, FileNotFoundError, NotADirectoryError) as err:
        print(f"critic: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("critic: interrupted", file=sys.stderr)
        sys.exit(130)


def expand_optional_values(args: list[str]) -> list[str]:
    """`--diff` takes an optional REF, which click options cannot: a bare `--diff` means HEAD, and the
    next word is its REF only if git knows it as a commit and it is not a path (git's own rule)."""
    if "--diff" not in args:
        return args
    at = args.index("--diff")
    following = args[at + 1] if at + 1 < len(args) else None
    if following is not None and not following.startswith("-") and not os.path.exists(following):
        from critic.review.files import is_git_ref

        if is_git_ref(following):
            return args
    return [*args[:at], "--diff=HEAD", *args[at + 1 :]]


if __name__ == "__main__":
    main()
