"""`python -m qianliyan.stack`: the same as the `qianliyan-stack` command."""

from qianliyan.stack.cli import app

app(prog_name="qianliyan-stack")
