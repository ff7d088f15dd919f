"""`qianliyan-triage`: run the triage pipeline and its health endpoint."""

from __future__ import annotations

from qianliyan.shared.http import serve
from qianliyan.triage.app import create_app
from qianliyan.triage.settings import TriageSettings


def main() -> None:
    """Serve triage with settings from the environment."""
    settings = TriageSettings()
    serve(create_app(settings), service="triage", host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
