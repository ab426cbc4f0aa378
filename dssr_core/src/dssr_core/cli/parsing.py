"""How a ``dssr`` subcommand is declared: one summary line, shown by ``dssr -h`` and its own -h."""

import argparse


def add_command(commands, name: str, summary: str, handler, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose ``dssr NAME -h`` opens with ``summary`` and then ``details``."""
    description = f"{summary[0].upper()}{summary[1:]}. {details}".strip()
    sub = commands.add_parser(name, help=summary, description=description)
    sub.set_defaults(handler=handler)
    return sub
