"""The `critic` command: Typer app with one sub-app per command group.

Heavy imports (torch, transformers) happen inside commands so `critic --help`
stays instant.
"""

from __future__ import annotations

import sys

import typer

from critic.commands import data as data_commands
from critic.commands import model as model_commands
from critic.commands import train as train_commands

app = typer.Typer(
    name="critic",
    help="Train and run LLM code critics (CriticGPT recipe, Gemma 2 architecture).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(model_commands.app, name="model")
app.add_typer(data_commands.app, name="data")
app.add_typer(train_commands.app, name="train")


def main() -> None:
    """Entry point: known failures become `critic: error: ...` and exit 2."""
    from critic.errors import UserError
    from critic.model.checkpoint import CheckpointError

    try:
        app()
    except (UserError, CheckpointError, FileNotFoundError, NotADirectoryError) as err:
        print(f"critic: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("critic: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
