"""A throw-away single-node Apache Kafka (KRaft) on 127.0.0.1, fetched from Maven Central.

    python scripts/kafka/broker.py fetch            # download the jars once (cached)
    python scripts/kafka/broker.py run              # start a broker; prints its address; Ctrl-C stops

Jars come from Maven Central through Maven (``scripts/kafka/pom.xml``; no Docker, no tarball)
and are cached in ``.cache/kafka/<version>/lib``. Each broker gets free ports chosen at start
and a temporary data directory that is removed when it stops. The test suite uses
:class:`KafkaBroker` from ``tests/kafka/conftest.py``.

Version: 3.9.1. faust-streaming 0.15 installs aiokafka 0.14, whose own CI tests old brokers;
Kafka 4.0 removed protocol versions aiokafka still uses (KIP-896). 3.9.x is the newest line
that keeps them, and is what faust's users run (docs/faust.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSION = os.environ.get("CRM_PULSE_KAFKA_VERSION", "3.9.1")
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "kafka" / VERSION / "lib"


def fetch() -> Path:
    """The directory of broker jars, downloading them with Maven the first time."""
    if CACHE.exists() and any(CACHE.glob("kafka_2.13-*.jar")):
        return CACHE
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = CACHE.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(Path(__file__).with_name("pom.xml")),
            f"-Dkafka.version={VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ],
        check=True,
    )
    partial.rename(CACHE)
    return CACHE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KafkaBroker:
    """Start with :meth:`start`, use :attr:`bootstrap`, stop with :meth:`stop`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.controller_port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="crm-pulse-kafka-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # runtime.faust.session_timeout below Kafka's default minimum (6 s), for the
            # fail-over benchmark and tests
            "group.min.session.timeout.ms": "1000",
            "auto.create.topics.enable": "true",
            "log.flush.interval.messages": "1",
        }
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        return path

    def _java(self, *args: str) -> list[str]:
        lib = fetch()
        return [
            "java",
            "-Xmx512m",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            "-cp",
            f"{lib}/*",
            *args,
        ]

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        props = self._properties()
        cluster = (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)),
            check=True,
            capture_output=True,
        )
        log = (self.dir / "broker.log").open("wb")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the Kafka broker exited: {(self.dir / 'broker.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"the Kafka broker did not listen on {self.bootstrap} within {timeout:.0f} s"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    if command == "fetch":
        print(fetch())
        return 0
    broker = KafkaBroker().start()
    print(f"Kafka {VERSION} on {broker.bootstrap} (Ctrl-C stops)", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
