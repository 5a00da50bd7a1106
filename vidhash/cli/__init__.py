"""The ``vidhash`` command: a thin click group over the library.

Each sub-command lives in its own module (``vidhash/cli/<name>.py``, exposing ``command``)
and is imported only when invoked, so ``vidhash --help`` stays fast and a command that
needs torch does not make the others pay for it.

Exit codes (documented in README): 0 success; 1 finished but some inputs failed
(recorded in the output); 2 usage or input error (one line on stderr, nothing changed);
130 interrupted.
"""

from __future__ import annotations

import importlib
import sys

import click

from vidhash.errors import VidhashError

# command name -> module under vidhash.cli
COMMANDS: dict[str, str] = {
    "extract": "extract",
    "index": "index",
    "annotate": "annotate",
    "search": "search",
    "evaluate": "evaluate",
    "train-seg": "train_seg",
    "train-hash": "train_hash",
    "fit-descriptor": "fit_descriptor",
    "benchmark-hashing": "benchmark_hashing",
    "models": "models",
    "serve": "serve",
}


# What only the [train] extra installs (training, export, the torch runtime).
TRAIN_MODULES = ("torch", "torchvision", "onnx", "onnxscript", "efficientnet_lite_pytorch")


class LazyGroup(click.Group):
    """Imports a sub-command's module only when it is run or its help is shown."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, mod in COMMANDS.items() if _module_exists(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None or not _module_exists(module):
            return None
        return importlib.import_module(f"vidhash.cli.{module}").command


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"vidhash.cli.{module}") is not None


@click.group(cls=LazyGroup)
@click.version_option(package_name="vidhash")
def cli() -> None:
    """vidhash: folders of video -> a searchable index of hashed keyframes."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr, never a traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except VidhashError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        if exc.name not in TRAIN_MODULES:
            raise
        click.echo(f"error: this command needs {exc.name}: pip install 'vidhash[train]'", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        # A full disk, a read-only folder, a permission problem: say which, in one line.
        click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
