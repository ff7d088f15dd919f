"""`qianliyan-notify`: run the read models, feed and alerts."""

from __future__ import annotations

from qianliyan.notify.app import create_app
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.http import serve


def main() -> None:
    """Serve notify with settings from the environment."""
    settings = NotifySettings()
    serve(create_app(settings), service="notify", host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
