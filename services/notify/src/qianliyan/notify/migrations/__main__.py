"""`python -m qianliyan.notify.migrations`: bring notify's schema up to date."""

from qianliyan.notify.migrations import upgrade
from qianliyan.notify.settings import NotifySettings

upgrade(NotifySettings().postgres.dsn.get_secret_value())
