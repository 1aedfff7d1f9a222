"""The click command the docs' CLI reference is generated from (mkdocs-click imports ``cli`` from here)."""

from vggedge.cli import click_command

cli = click_command()
