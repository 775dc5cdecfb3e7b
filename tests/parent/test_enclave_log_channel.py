"""The enclave's log channel: JSON lines from the enclave's logging, over host services, re-emitted
in the parent's log stream as ``source: "enclave"`` — with real host services on a real socket."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import pytest

from enclave.logs import LogChannel
from enclave.secretbytes import SecretBytes
from parent.blobstore import LocalDirBlobStore
from parent.enclavelogs import EnclaveLogRelay
from parent.hostservices import HostServices
from transport.address import PARENT_CID
from transport.errors import MalformedMessageError
from transport.hostclient import HostClient
from transport.hostproto import MAX_LOG_BATCH, PutLogs, decode_request, encode_request
from transport.jsonlog import JsonFormatter
from transport.unix import UnixSocketTransport

ENCLAVE_CID = 16


def _parent_stream() -> tuple[io.StringIO, logging.Handler]:
    """What the parent writes: JSON lines of every ``enclave.*`` record it handles."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("parent"))
    logging.getLogger("enclave").addHandler(handler)
    return stream, handler


def test_enclave_events_reach_the_parents_stream_as_json(runtime_dir: Path) -> None:
    stream, parent_handler = _parent_stream()
    # One process plays both sides: the enclave's logger is outside "enclave." so that its record
    # goes to the channel only, and the relay files it under "enclave.<name>" on the parent side.
    emitter = logging.getLogger("channeltest")
    emitter.propagate = False
    emitter.setLevel(logging.INFO)

    async def scenario() -> HostServices:
        parent = UnixSocketTransport(runtime_dir, local_cid=PARENT_CID)
        services = HostServices(LocalDirBlobStore(runtime_dir / "blobs"), None)
        await services.serve(parent)
        channel = LogChannel(HostClient(UnixSocketTransport(runtime_dir, local_cid=ENCLAVE_CID)))
        emitter.addHandler(channel)
        try:
            emitter.info(
                "request refused",
                extra={
                    "fields": {
                        "event": "request_refused",
                        "op": "frost_sign",
                        "code": "quorum_not_met",
                        "share": SecretBytes(b"\x42" * 32),
                    }
                },
            )
            assert await channel.send_buffered()
        finally:
            emitter.removeHandler(channel)
            await services.close()
        return services

    try:
        services = asyncio.run(scenario())
    finally:
        logging.getLogger("enclave").removeHandler(parent_handler)
        emitter.propagate = True
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["source"] == "enclave"  # kept, though the parent's formatter says "parent"
    assert entry["logger"] == "enclave.channeltest"
    assert (entry["event"], entry["op"], entry["code"]) == (
        "request_refused",
        "frost_sign",
        "quorum_not_met",
    )
    assert entry["share"] == "<unloggable>"
    assert "4242" not in line
    assert services.logs.counts.relayed == 1
    assert services.requests == {("PutLogs", "Ok"): 1}


def test_lines_wait_while_the_parent_is_away_and_overflow_is_counted(runtime_dir: Path) -> None:
    channel = LogChannel(
        HostClient(UnixSocketTransport(runtime_dir, local_cid=ENCLAVE_CID)), capacity=3
    )
    emitter = logging.getLogger("overflowtest")
    emitter.propagate = False
    emitter.setLevel(logging.INFO)
    emitter.addHandler(channel)
    relay_seen: list[PutLogs] = []

    async def scenario() -> None:
        # no parent listening: the batch stays buffered
        for n in range(5):
            emitter.info("event %d", n)
        assert not await channel.send_buffered()
        assert (channel.pending, channel.dropped) == (3, 2)
        services = HostServices(LocalDirBlobStore(runtime_dir / "blobs"), None)
        original = services.dispatch

        async def spy(request):  # type: ignore[no-untyped-def]
            if isinstance(request, PutLogs):
                relay_seen.append(request)
            return await original(request)

        services.dispatch = spy  # type: ignore[method-assign]
        await services.serve(UnixSocketTransport(runtime_dir, local_cid=PARENT_CID))
        try:
            assert await channel.send_buffered()
        finally:
            await services.close()

    try:
        asyncio.run(scenario())
    finally:
        emitter.removeHandler(channel)
        emitter.propagate = True
    [batch] = relay_seen
    assert [json.loads(line)["msg"] for line in batch.lines] == ["event 2", "event 3", "event 4"]
    assert batch.dropped == 2
    assert (channel.pending, channel.dropped, channel.sent) == (0, 0, 3)


def test_the_relay_refuses_what_is_not_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    relay = EnclaveLogRelay()
    caplog.set_level(logging.DEBUG)
    good = json.dumps({"ts": 1.5, "level": "warning", "logger": "enclave.boot", "msg": "m", "k": 1})
    relay.relay(
        [
            good,
            "not json",
            json.dumps([1, 2]),
            json.dumps({"ts": 1, "level": "info", "msg": "nested", "x": {"a": 1}}),
            json.dumps({"ts": 1, "level": "shout", "msg": "bad level"}),
            json.dumps({"ts": 1, "level": "info", "logger": "parent.proxy", "msg": "renamed"}),
        ],
        dropped=4,
    )
    assert (relay.counts.relayed, relay.counts.malformed, relay.counts.dropped_by_enclave) == (
        2,
        4,
        4,
    )
    relayed = [r for r in caplog.records if getattr(r, "source", None) == "enclave"]
    assert [r.name for r in relayed] == ["enclave.boot", "enclave.parent.proxy"]
    assert relayed[0].levelno == logging.WARNING
    assert relayed[0].created == 1.5
    assert relayed[0].fields == {"k": 1}  # type: ignore[attr-defined]


def test_put_logs_codec_is_strict() -> None:
    message = PutLogs(('{"msg": "a"}',), 2)
    assert decode_request(encode_request(message)) == message
    with pytest.raises(MalformedMessageError):
        PutLogs(("x",) * (MAX_LOG_BATCH + 1))
    with pytest.raises(MalformedMessageError):
        PutLogs(("x" * 9000,))
    with pytest.raises(MalformedMessageError):
        PutLogs((), -1)
