"""`python -m qianliyan.ingest.migrations`: bring ingest's schema up to date."""

from qianliyan.ingest.migrations import upgrade
from qianliyan.ingest.settings import IngestSettings

upgrade(IngestSettings().postgres.dsn.get_secret_value())
