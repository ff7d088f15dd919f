"""Apache Kafka as one KRaft node (broker and controller), its jars fetched with Maven."""

from __future__ import annotations

import base64
import hashlib
import shutil
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from qianliyan.stack.blocking import run_blocking
from qianliyan.stack.component import ComponentStatus
from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import (
    ManagedProcess,
    StackError,
    ensure_port_free,
    port_accepts,
    provision_once,
    require_program,
    run_logged,
)

_POM = Path(__file__).with_name("kafka_broker_pom.xml")
# Records which pom the jars were gathered with, so editing the pom re-gathers them.
_COMPLETE_MARKER = ".qianliyan-pom-sha256"
_HEAP = "512m"


class Kafka:
    """A single-node Kafka whose data lives under the stack's data directory."""

    name = "kafka"

    def __init__(self, config: StackConfig) -> None:
        self._config = config
        self._home = config.cache_dir / "kafka" / config.kafka_version
        self._libs = self._home / "libs"
        self._dir = config.data_dir / "kafka"
        self._log_dirs = self._dir / "data"
        self._process = ManagedProcess(self.name, config.data_dir)

    def is_provisioned(self) -> bool:
        """Whether the broker's jars for this version and pom are in the cache."""
        marker = self._libs / _COMPLETE_MARKER
        return marker.is_file() and marker.read_text() == _pom_digest()

    def provision(self) -> None:
        """Gather the broker's runtime classpath from Maven Central into the cache."""
        version = self._config.kafka_version

        def gather(staging: Path) -> str:
            maven = require_program("mvn", "Maven is needed to fetch Kafka's jars")
            run_logged(
                [
                    maven,
                    "-q",
                    "-B",
                    "-f",
                    _POM,
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-Dkafka.version={version}",
                    f"-DoutputDirectory={staging}",
                ],
                self._home / "maven.log",
            )
            (staging / _COMPLETE_MARKER).write_text(_pom_digest())
            _replace_dir(self._libs, staging)
            return f"Kafka {version}: jars ready in {self._libs}"

        provision_once(
            self._home,
            is_done=self.is_provisioned,
            announce=f"Kafka {version}: fetching the broker's jars with Maven (first time only)...",
            build=gather,
        )

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker, formatting its storage on the first start; wait until it serves."""
        with self._process.lock():
            if self._process.pid() is not None:
                return False
            if not self.is_provisioned():
                raise StackError("kafka is not provisioned; run `qianliyan-stack provision`")
            host = self._config.host
            for port in (self._config.kafka_port, self._config.kafka_controller_port):
                ensure_port_free(host, port, self.name)
            java = require_program("java", "a Java 17+ runtime is needed to run Kafka")
            properties = self._write_properties()
            if not (self._log_dirs / "meta.properties").exists():
                run_logged(
                    [
                        *self._java_command(java),
                        "kafka.tools.StorageTool",
                        "format",
                        "--cluster-id",
                        new_cluster_id(),
                        "--config",
                        properties,
                        "--standalone",
                    ],
                    self._process.log_path,
                )
            self._process.start([*self._java_command(java), "kafka.Kafka", properties])
            self._process.wait_until_ready(self._serves, timeout=timeout)
            return True

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the broker down cleanly (it flushes and closes its logs)."""
        self._process.stop(timeout=timeout)

    def status(self) -> ComponentStatus:
        """Whether the broker runs and its bootstrap address."""
        pid = self._process.pid()
        return ComponentStatus(
            self.name, pid is not None, pid, self._config.kafka_bootstrap, self._process.log_path
        )

    def _java_command(self, java: str) -> list[str | Path]:
        return [
            java,
            f"-Xms{_HEAP}",
            f"-Xmx{_HEAP}",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-cp",
            f"{self._libs}/*",
        ]

    def _write_properties(self) -> Path:
        config = self._config
        controller = f"{config.host}:{config.kafka_controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A dynamic quorum (KIP-853), which `format --standalone` sets up with this node.
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{config.kafka_bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{config.kafka_bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # One node cannot replicate; fewer internal partitions make the first consumer
            # group and the first transaction start in well under a second.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.num.partitions": "1",
        }
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return path

    def _serves(self) -> bool:
        if not port_accepts(self._config.host, self._config.kafka_port):
            return False
        return run_blocking(_has_live_broker(self._config.kafka_bootstrap))


async def _has_live_broker(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))


def new_cluster_id() -> str:
    """A random cluster id, as Kafka's own tools make them.

    An id starting with '-' would be read as an option by the storage tool's argument
    parser (1 in 64 of them), so, like Kafka's Uuid.randomUuid, such ids are redrawn.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _pom_digest() -> str:
    return hashlib.sha256(_POM.read_bytes()).hexdigest()


def _replace_dir(target: Path, replacement: Path) -> None:
    if target.exists():
        retired = target.with_name(f"{target.name}.retired-{uuid.uuid4().hex[:8]}")
        target.rename(retired)
        replacement.rename(target)
        shutil.rmtree(retired)
    else:
        replacement.rename(target)
