"""The enclave's boot sequence: attest, obtain the data key from KMS, unseal the node state.

Steps (each names itself in the ``failed`` status if it raises):

1. ``image`` — every project module was loaded from the measured image (:mod:`enclave.image`).
2. ``launch`` — ask the parent which node this is (``GetLaunch``) and look the id up in the image's
   cluster table (:meth:`enclave.config.ImageConfig.node_key`): an id the table does not list fails
   the boot here; a listed one fixes the KMS key and region for the rest of the boot. Until then the
   status reports an empty node id.
3. ``attest`` — generate an RSA-2048 key; ask the NSM for a document binding its public key (DER
   SubjectPublicKeyInfo) and a fresh random nonce; verify that document against the image's pinned
   root and check that it echoes our nonce and key and is fresh. This is the enclave's own check of
   what came back from the NSM (in emulation the answer travels over a socket); KMS checks the same
   document again, against its key policy.
4. ``credentials`` — temporary AWS credentials from the parent (host services).
5. ``kms`` — through the loopback tunnel to the parent's outbound proxy, over TLS verified inside
   the enclave (AWS's certificate; in emulation the dev CA in ``image.json``): ``GenerateDataKey``
   on first boot (its public ``CiphertextBlob`` stored at the parent), ``Decrypt`` of that blob
   afterwards, both with ``Recipient``; open ``CiphertextForRecipient`` with the RSA key inside the
   enclave. A parent routing KMS elsewhere fails the TLS handshake here, so it cannot hand a first
   boot a data key of its choosing.
6. ``unseal`` — load the sealed manifest and node state with that data key, or create and seal a
   fresh node identity on first boot.

Only then is the node ``ready``. Nothing secret leaves unsealed: the parent sees the document (public),
the ``CiphertextBlob`` (KMS ciphertext), the recipient envelope (sealed to our RSA key) and sealed
blobs. The RSA key lives for one boot; the data key lives in the sealer only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.errors import AttestationError
from attestation.nsm.client import NsmClient
from attestation.policy import AttestationPolicy
from attestation.recipient import decrypt_for_recipient
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.config import KMS_PROXY_PORT, ImageConfig, LaunchConfig, NodeKey, Seams
from enclave.errors import BlobMissingError, BootError, EnclaveError, KmsError
from enclave.image import check_loaded_modules, image_root
from enclave.kms import EnclaveKms, StaticCredentials
from enclave.kms_tunnel import KmsTunnel
from enclave.node_state import STATE_BLOB, NodeIdentity
from enclave.sealing import MANIFEST_NAME, SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from enclave.service.audit import HEAD_BLOB as AUDIT_HEAD_BLOB
from enclave.service.audit import AuditTrail, HostShipper
from enclave.service.binding import PeerVerifier
from enclave.service.handlers import NodeService
from enclave.service.identity import ServiceIdentity
from enclave.service.server import SERVICE_PORT, ServiceListener
from enclave.status import CLIENT_PORT, NodeState, NodeStatus, StatusListener
from transport.address import ANY_CID, PARENT_CID, VsockAddress
from transport.errors import TransportError
from transport.hostclient import HostClient
from wire.telemetry import NodeTelemetry, TelemetryState, encode_telemetry

__all__ = ["DATA_KEY_BLOB", "EnclaveRuntime"]

log = logging.getLogger("enclave.boot")

#: The KMS ``CiphertextBlob`` of the data key, kept at the parent (KMS ciphertext: not secret).
DATA_KEY_BLOB = "kms-data-key"
#: How long a stopping enclave tries to hand its last audit records to the parent.
AUDIT_FLUSH_SECONDS = 2.0
_NONCE_SIZE = 32
_DATA_KEY_SIZE = 32

Clock = Callable[[], dt.datetime]
_T = TypeVar("_T")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class _Attested:
    private_key: rsa.RSAPrivateKey
    document: bytes
    pcrs: Mapping[int, bytes]


class EnclaveRuntime:
    """One enclave's lifetime: serve status, boot, then wait for a stop request."""

    def __init__(
        self,
        launch: LaunchConfig,
        image: ImageConfig,
        seams: Seams,
        *,
        clock: Clock = _utc_now,
    ) -> None:
        self._launch = launch
        self._image = image
        self._seams = seams
        self._clock = clock
        self._host = HostClient(seams.transport)
        self._verifier = AttestationVerifier(TrustedRoots.of([image.attestation_root]), clock=clock)
        self._state = NodeState.BOOTING
        self._node: NodeKey | None = None
        self._reason: str | None = None
        self._pcrs: Mapping[int, bytes] = MappingProxyType({})
        self._identity: NodeIdentity | None = None
        self._data_key_id: str | None = None
        self._tunnel: KmsTunnel | None = None
        self._service_server: asyncio.AbstractServer | None = None
        self._service_listener: ServiceListener | None = None
        self._sweeper: asyncio.Task[None] | None = None  # erases keys whose deletion is due
        self._auditor: asyncio.Task[None] | None = None  # hands audit records to the parent
        self._service: NodeService | None = None
        self._started = time.monotonic()
        self._attested_at: float | None = None
        self.store: SealedStore | None = None

    # -- status ---------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        return NodeStatus(
            state=self._state,
            node_id="" if self._node is None else self._node.node_id,
            reason=self._reason,
            pcrs=self._pcrs,
            sealed_version=0 if self.store is None else self.store.epoch,
            identity_public_key=None if self._identity is None else self._identity.public_key,
            data_key_id=self._data_key_id,
        )

    async def telemetry(self) -> bytes:
        """The ``metrics`` op's reply: this status plus the node service's counters."""
        status = self.status()
        now = time.monotonic()
        service = self._service
        return encode_telemetry(
            NodeTelemetry(
                state=TelemetryState(status.state.value),
                node_id=status.node_id,
                reason=status.reason,
                pcr0=status.pcrs.get(0, b""),
                sealed_version=status.sealed_version,
                attestation_age_s=(
                    None if self._attested_at is None else int(now - self._attested_at)
                ),
                uptime_s=int(now - self._started),
                operations=() if service is None else service.metrics.operations(),
                latency=() if service is None else service.metrics.latency(),
                keys=() if service is None else await service.metrics.key_stats(),
            )
        )

    # -- lifetime -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> NodeState:
        """Serve status, boot, and keep serving until ``stop`` is set. Returns the final state."""
        status = StatusListener(self.status, telemetry=self.telemetry)
        server = await self._seams.transport.listen(
            VsockAddress(ANY_CID, CLIENT_PORT), status.handle
        )
        log.info("status listening", extra={"fields": {"event": "listening", "port": CLIENT_PORT}})
        boot = asyncio.create_task(self._boot_reporting())
        try:
            await stop.wait()
        finally:
            boot.cancel()
            await asyncio.gather(boot, return_exceptions=True)
            server.close()
            await status.close()
            await server.wait_closed()
            if self._sweeper is not None:
                self._sweeper.cancel()
                await asyncio.gather(self._sweeper, return_exceptions=True)
            if self._service_listener is not None:
                await self._service_listener.close()
            if self._service_server is not None:
                self._service_server.close()
                await self._service_server.wait_closed()
            await self._stop_audit()
            if self._tunnel is not None:
                await self._tunnel.close()
            if self._identity is not None:
                self._identity.wipe()
            log.info("stopped", extra={"fields": {"event": "stopped", "state": self._state.value}})
        return self._state

    async def _boot_reporting(self) -> None:
        try:
            await self.boot()
        except BootError as error:
            self._fail(error.step, error.reason)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # process boundary: report the type only
            self._fail("internal", type(error).__name__)

    def _fail(self, step: str, reason: str) -> None:
        self._state = NodeState.FAILED
        self._reason = f"{step}: {reason}"[:2000]
        log.error(
            "boot failed",
            extra={"fields": {"event": "boot_failed", "step": step, "reason": self._reason}},
        )

    async def boot(self) -> None:
        """Run the boot steps; raise :class:`BootError` naming the step that failed."""
        await self._step("image", self._check_image())
        node = await self._step("launch", self._node_from_parent())
        attested = await self._step("attest", self._attest())
        self._pcrs = attested.pcrs
        credentials = await self._step("credentials", self._credentials())
        data_key = await self._step("kms", self._data_key(node, attested, credentials))
        try:
            await self._step("unseal", self._unseal(node, data_key))
        finally:
            data_key.wipe()
        await self._step("image", self._check_image())
        await self._step("service", self._start_service(node))
        self._state = NodeState.READY
        log.info(
            "ready",
            extra={"fields": {"event": "ready", "sealed_version": self.status().sealed_version}},
        )

    async def _step(self, name: str, work: Awaitable[_T]) -> _T:
        log.info("boot step", extra={"fields": {"event": "boot_step", "step": name}})
        try:
            return await work
        except (EnclaveError, AttestationError, TransportError, OSError) as error:
            raise BootError(name, f"{type(error).__name__}: {error}") from None

    # -- steps ----------------------------------------------------------------------------

    async def _check_image(self) -> None:
        check_loaded_modules(image_root())

    async def _node_from_parent(self) -> NodeKey:
        """The parent's claim, accepted only as a row of the measured table (see ImageConfig)."""
        node = self._image.node_key(await self._host.get_launch())
        self._node = node
        log.info(
            "node named",
            extra={"fields": {"event": "node", "node_id": node.node_id, "region": node.region}},
        )
        return node

    async def _attest(self) -> _Attested:
        private_key = await asyncio.to_thread(rsa.generate_private_key, 65537, 2048)
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        nonce = os.urandom(_NONCE_SIZE)
        client = NsmClient(self._seams.nsm)
        document = await asyncio.to_thread(client.get_attestation_document, None, nonce, public_der)
        now = self._clock()
        verified = self._verifier.verify(document, at=now)
        # Public, and what an operator needs to see when the policy below or KMS refuses.
        self._pcrs = MappingProxyType(dict(verified.pcrs))
        AttestationPolicy(
            nonce=nonce,
            public_key=public_der,
            max_age=dt.timedelta(seconds=self._image.max_document_age_seconds),
        ).check(verified, now=now)
        self._attested_at = time.monotonic()
        log.info(
            "attested",
            extra={"fields": {"event": "attested", "document_size": len(document)}},
        )
        return _Attested(private_key, document, MappingProxyType(dict(verified.pcrs)))

    async def _start_service(self, node: NodeKey) -> None:
        """Per-boot TLS and box keys, then the node service on :data:`SERVICE_PORT`.

        Skipped when the image authorises no client (nobody could connect)."""
        if not self._image.authorized_clients or self.store is None or self._identity is None:
            return
        identity = await asyncio.to_thread(
            ServiceIdentity.generate, node.node_id, self._clock(), self._identity
        )
        trail = await self._audit_trail(identity)
        service = NodeService(
            audit=trail,
            identity=identity,
            nsm=self._seams.nsm,
            store=self.store,
            cluster_size=len(self._image.nodes),
            peers=PeerVerifier(
                self._verifier,
                self._pcrs,
                dt.timedelta(seconds=self._image.max_document_age_seconds),
                self._clock,
                self._image.peer_releases,
            ),
        )
        self._service = service
        self._service_listener = ServiceListener(service, self._image.authorized_clients)
        self._service_server = await self._seams.transport.listen_protocol(
            VsockAddress(ANY_CID, SERVICE_PORT), self._service_listener.protocol
        )
        self._sweeper = asyncio.get_running_loop().create_task(service.sweep_forever())
        self._auditor = asyncio.get_running_loop().create_task(trail.run())
        log.info(
            "service listening", extra={"fields": {"event": "listening", "port": SERVICE_PORT}}
        )

    async def _audit_trail(self, identity: ServiceIdentity) -> AuditTrail:
        """This node's audit trail, continuing the sealed chain head; records go to the parent
        with a document binding the identity key that signs them."""
        store = self.store
        assert store is not None  # checked by the caller

        async def document() -> bytes:
            client = NsmClient(self._seams.nsm)
            binding = identity.binding().encode()
            return await asyncio.to_thread(client.get_attestation_document, binding, None, None)

        async def seal(head: bytes) -> None:
            await store.put(AUDIT_HEAD_BLOB, head)

        trail = AuditTrail(
            identity.node_id,
            identity.node_identity.sign,
            seal=seal,
            ship=HostShipper(self._host, document),
        )
        trail.resume(await store.get(AUDIT_HEAD_BLOB))
        log.info("audit trail", extra={"fields": {"event": "audit_resumed", "seq": trail.seq}})
        return trail

    async def _stop_audit(self) -> None:
        """Stop the audit task and hand over what is pending, briefly (the parent is stopping
        this enclave; what does not leave now is lost, and a receipt naming it shows that)."""
        if self._auditor is None or self._service is None:
            return
        self._auditor.cancel()
        await asyncio.gather(self._auditor, return_exceptions=True)
        with contextlib.suppress(TimeoutError, EnclaveError, OSError):
            async with asyncio.timeout(AUDIT_FLUSH_SECONDS):
                await self._service.audit.flush()

    async def _credentials(self) -> StaticCredentials:
        relayed = await self._host.get_credentials()
        return StaticCredentials(
            relayed.access_key_id, relayed.secret_access_key, relayed.session_token
        )

    async def _data_key(
        self, node: NodeKey, attested: _Attested, credentials: StaticCredentials
    ) -> SecretBytes:
        route = self._seams.kms_route(node.region, self._image.kms_ca_pem)
        self._tunnel = KmsTunnel(
            self._seams.transport,
            VsockAddress(PARENT_CID, KMS_PROXY_PORT),
            connect_target=route.connect_target,
        )
        port = await self._tunnel.start()
        kms = EnclaveKms(
            route.endpoint_url(port),
            node.region,
            credentials,
            proxy_url=route.proxy_url(port),
            ca_pem=route.ca_pem,
        )
        try:
            return await self._exchange_data_key(kms, node, attested)
        finally:
            kms.close()

    async def _exchange_data_key(
        self, kms: EnclaveKms, node: NodeKey, attested: _Attested
    ) -> SecretBytes:
        key_id, node_id = node.kms_key_arn, node.node_id
        blob = await self._host.get_blob(DATA_KEY_BLOB)
        if blob is None:
            if await self._host.get_blob(MANIFEST_NAME) is not None:
                # Sealed state exists but its data key is gone: a new key could never open it.
                raise BlobMissingError(DATA_KEY_BLOB, 1)
            response = await asyncio.to_thread(
                kms.generate_data_key, key_id, node_id, attested.document
            )
            await self._host.put_blob(DATA_KEY_BLOB, response.ciphertext_blob)
            operation = "GenerateDataKey"
        else:
            response = await asyncio.to_thread(
                kms.decrypt, key_id, node_id, blob, attested.document
            )
            operation = "Decrypt"
        if response.key_id != key_id:
            raise KmsError(operation, "WrongKey", f"answered for {response.key_id}")
        data_key = SecretBytes(
            decrypt_for_recipient(response.ciphertext_for_recipient, attested.private_key)
        )
        if len(data_key) != _DATA_KEY_SIZE:
            data_key.wipe()
            raise KmsError(operation, "WrongKeySize", "the data key is not 32 bytes")
        self._data_key_id = hashlib.sha256(response.ciphertext_blob).hexdigest()
        log.info("data key obtained", extra={"fields": {"event": "data_key", "via": operation}})
        return data_key

    async def _unseal(self, node: NodeKey, data_key: SecretBytes) -> None:
        store = SealedStore(Sealer(data_key, node.node_id), self._host)
        existing = await store.load()
        plaintext = await store.get(STATE_BLOB)
        if plaintext is None:
            identity = NodeIdentity.generate()
            await store.put(STATE_BLOB, identity.encode())
            event = "sealed_new_state"
        else:
            identity = NodeIdentity.decode(plaintext)
            event = "unsealed_state"
        self.store = store
        self._identity = identity
        log.info(
            "node state",
            extra={"fields": {"event": event, "manifest": existing, "epoch": store.epoch}},
        )
