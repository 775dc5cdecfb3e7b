"""``/ready`` on a real booting node (issue 12 acceptance): the parent's operations endpoint
answers 503, with a reason, while its enclave boots, and 200 once the enclave serves.

No timing assumption decides what is observed: the node's KMS traffic passes a relay (the dev
cluster's ``kms_route`` seam, where the parents' outbound proxies forward to the KMS) that holds
every connection until the test opens it, and the enclave cannot obtain its data key — so cannot
unseal its state or serve — without KMS. The test restarts the node with the relay shut, polls
``/ready`` from the moment its parent listens until it has seen a 503 from the booting enclave,
and the enclave's KMS connection waits at the relay, and only then opens it; the node must then
become ready (a bounded wait). The enclave's own
KMS timeout (two attempts of 10 s) is the only clock involved: the relay opens long before it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cluster_processes import running_cluster

from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow

READY_DEADLINE = 90.0


class GatedRelay:
    """A TCP relay to the KMS that holds every connection it accepts until :meth:`open`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._target = 0
        self._open = threading.Event()
        self._open.set()  # open while the cluster comes up
        self.holding = threading.Event()  # set once a connection waits at the shut gate

    def route(self, kms_port: int) -> int:
        self._target = kms_port
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self.port

    def shut(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if not self._open.is_set():
            self.holding.set()
            self._open.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self._target))
        except OSError:
            client.close()
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._open.set()
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _ready(url: str) -> tuple[int, dict[str, object]] | None:
    """``GET /ready`` as a load balancer does it; None while nothing listens on the port."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.fixture(scope="module")
def relay() -> Iterator[GatedRelay]:
    relay = GatedRelay()
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def cluster(relay: GatedRelay) -> Iterator[Cluster]:
    with running_cluster("ksr-", 1, kms_route=relay.route) as running:
        yield running


def test_ready_is_503_while_the_enclave_boots_and_200_once_it_serves(
    cluster: Cluster, relay: GatedRelay
) -> None:
    [view] = cluster.status()
    url = view.urls()["ready_url"]
    assert url is not None
    assert _ready(url) == (200, {"state": "ready", "reason": None})

    relay.shut()
    cluster.restart_node(1)  # same sealed state: the data key must come from KMS again
    answers: list[tuple[int, dict[str, object]]] = []
    deadline = time.monotonic() + READY_DEADLINE
    while not any(a[1]["state"] == "booting" for a in answers):
        answer = _ready(url)  # nothing listens until the new parent is up
        if answer is not None:
            answers.append(answer)
        assert time.monotonic() < deadline, answers
        time.sleep(0.05)
    # everything seen before the relay opened: 503 with a reason, never ready
    assert {status for status, _ in answers} == {503}
    assert all(verdict["reason"] for _, verdict in answers), answers
    booting = next(verdict for _, verdict in answers if verdict["state"] == "booting")
    assert str(booting["reason"]).startswith("the enclave has been booting for ")
    # the enclave reaches its KMS step and waits there: provably mid-boot, and not ready
    assert relay.holding.wait(timeout=READY_DEADLINE)
    status, verdict = _ready(url) or (0, {})
    assert (status, verdict["state"]) == (503, "booting"), verdict

    relay.open()
    while (answer := _ready(url)) is None or answer[0] != 200:
        assert answer is None or answer[0] == 503, answer
        assert answer is None or answer[1]["state"] != "failed", answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert answer == (200, {"state": "ready", "reason": None})
