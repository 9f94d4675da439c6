"""The `ray` command line (click). Subcommand groups live in their own modules."""

import click

import ray


@click.group()
@click.version_option(version=ray.__version__, prog_name="ray")
def cli() -> None:
    """OpenRay command line: start and stop nodes, check status, submit jobs."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
