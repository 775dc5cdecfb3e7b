"""The SDK facade: :class:`AsyncClient` for asyncio code, :class:`Client` for everything else.

Both are made from a cluster profile (what ``keyshard dev up`` writes, and what the Terraform
``cluster-profile`` module renders for a real deployment) plus the client's TLS certificate and
key (listed in the measured image of every node). Where they come from, first match wins:

* ``from_profile(path, cert=..., key=...)`` — explicit paths;
* the environment: ``KEYSHARD_PROFILE``, ``KEYSHARD_CLIENT_CERT``, ``KEYSHARD_CLIENT_KEY``;
* beside the profile: ``<profile dir>/client/client-cert.pem`` and ``client-key.pem`` (the layout
  ``keyshard dev up`` writes).

Every error is a :class:`~keyshard.client.errors.ClientError` with a ``code``. Signatures are
returned verified; ECDSA signatures as DER (as OpenSSL and AWS KMS return them) by :meth:`sign`,
or with their recovery id by :meth:`AsyncClient.sign_ecdsa`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enclave.mpc.decryption.ecies import MAX_CIPHERTEXT, MAX_PLAINTEXT
from enclave.mpc.ecdsa import EcdsaSignature
from enclave.mpc.prf import PrfMode
from enclave.mpc.suites import Scheme
from keyshard.client.backup import Backup
from keyshard.client.bip340 import taproot_tweak
from keyshard.client.channel import NodeChannel, NodeTrust, client_context
from keyshard.client.checkpoints import Witnessed, collect_checkpoints, verify_witnessed
from keyshard.client.coordinator import Coordinator, KeyDescription, Link
from keyshard.client.credentials import CERT_FILE, KEY_FILE, ClientCredentials
from keyshard.client.custody import ExportBundle, PrivateKey
from keyshard.client.errors import ConfigurationError, CredentialsError, InvalidInputError
from keyshard.client.governance import PolicyRecord, read_history
from keyshard.client.profile import ClusterProfile
from keyshard.client.receipts import Receipt, collect_receipts, verify_receipt
from wire.approvals import ApprovalPolicy, decryption_digest, message_digest
from wire.messages import DEFAULT_DELETION_DAYS

__all__ = [
    "CERT_ENV",
    "KEY_ENV",
    "MAX_CIPHERTEXT",
    "MAX_PLAINTEXT",
    "PROFILE_ENV",
    "AsyncClient",
    "Client",
    "resolve_credentials",
]

PROFILE_ENV = "KEYSHARD_PROFILE"
CERT_ENV = "KEYSHARD_CLIENT_CERT"
KEY_ENV = "KEYSHARD_CLIENT_KEY"
_T = TypeVar("_T")


def resolve_credentials(
    profile_path: Path, cert: str | os.PathLike[str] | None, key: str | os.PathLike[str] | None
) -> ClientCredentials:
    """The client certificate and key: given, else from the environment, else beside the profile.
    Each source gives both or neither (a certificate from one place and a key from another is
    refused, not mixed)."""
    if cert is None and key is None:
        cert, key = os.environ.get(CERT_ENV) or None, os.environ.get(KEY_ENV) or None
        if (cert is None) != (key is None):
            raise CredentialsError(f"set both {CERT_ENV} and {KEY_ENV}, or neither")
    elif cert is None or key is None:
        raise CredentialsError("give both the client certificate and its key, or neither")
    if cert is None or key is None:
        directory = profile_path.parent / "client"
        cert, key = directory / CERT_FILE, directory / KEY_FILE
    credentials = ClientCredentials(Path(cert), Path(key))
    for path in (credentials.cert_path, credentials.key_path):
        if not path.is_file():
            raise CredentialsError(
                f"no client credentials at {path} (use --cert/--key or {CERT_ENV}/{KEY_ENV})"
            )
    return credentials


class AsyncClient:
    """A cluster, as one asyncio program uses it. ``async with`` closes its channels."""

    def __init__(
        self, profile: ClusterProfile, credentials: ClientCredentials, *, timeout: float = 30.0
    ) -> None:
        self.profile = profile
        addresses = {}
        for entry in profile.nodes:
            if entry.service_port is None:
                raise ConfigurationError(
                    f"the profile names no service endpoint for {entry.node_id}"
                )
            addresses[entry.node_id] = (entry.host, entry.service_port)
        self._addresses = addresses
        self._trust = NodeTrust.from_profile(profile)
        self._credentials = credentials
        self._context = client_context(credentials)
        self._timeout = timeout
        self.coordinator = Coordinator(addresses, self._connect)

    @classmethod
    def from_profile(
        cls,
        path: str | os.PathLike[str],
        *,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> AsyncClient:
        profile_path = Path(path)
        profile = ClusterProfile.load(profile_path)
        return cls(profile, resolve_credentials(profile_path, cert, key))

    @classmethod
    def from_env(cls) -> AsyncClient:
        path = os.environ.get(PROFILE_ENV)
        if not path:
            raise ConfigurationError(f"{PROFILE_ENV} names no cluster profile")
        return cls.from_profile(path)

    async def _connect(self, node_id: str) -> Link:
        host, port = self._addresses[node_id]
        return await NodeChannel.open(
            node_id,
            host,
            port,
            trust=self._trust,
            credentials=self._credentials,
            timeout=self._timeout,
            context=self._context,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.coordinator.close()

    # -- keys -----------------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        suite: str = "ed25519",
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
        exportable: bool = False,
    ) -> KeyDescription:
        return await self.coordinator.create_key(
            name,
            suite=suite,
            threshold=threshold,
            nodes=nodes,
            policy=policy,
            exportable=exportable,
        )

    async def export_key(
        self, name: str, recipient: bytes, *, approvals: Sequence[bytes] = ()
    ) -> ExportBundle:
        """Every holder's re-randomised share, HPKE-wrapped for ``recipient`` (raw X25519);
        open it with :func:`keyshard.client.custody.unwrap` and the recipient's private key."""
        return await self.coordinator.export_key(name, recipient, approvals=approvals)

    async def import_key(
        self,
        name: str,
        private: PrivateKey,
        *,
        suite: str | None = None,
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
        exportable: bool = False,
    ) -> KeyDescription:
        """Split ``private`` (:func:`keyshard.client.custody.load_private_key`) among the nodes."""
        return await self.coordinator.import_key(
            name,
            private,
            suite=suite,
            threshold=threshold,
            nodes=nodes,
            policy=policy,
            exportable=exportable,
        )

    async def describe_key(self, name: str, *, refresh: bool = False) -> KeyDescription:
        return await self.coordinator.describe_key(name, refresh=refresh)

    async def list_keys(self) -> list[str]:
        return await self.coordinator.list_keys()

    # -- governance -----------------------------------------------------------------------

    async def update_policy(
        self, name: str, policy: ApprovalPolicy | None, *, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        """Replace ``name``'s approval policy (None: none) with approvals its current policy
        accepts for ``update-policy`` (:func:`wire.approvals.policy_update_digest`)."""
        return await self.coordinator.update_policy(name, policy, approvals=approvals)

    async def policy_history(self, name: str) -> list[PolicyRecord]:
        """``name``'s policies, oldest first, the current one last."""
        return read_history(await self.coordinator.policy_history(name))

    # -- key state ------------------------------------------------------------------------

    async def disable_key(self, name: str) -> KeyDescription:
        """Every holder refuses to sign or decrypt with ``name`` until it is enabled."""
        return await self.coordinator.set_key_state(name, "disable")

    async def enable_key(self, name: str) -> KeyDescription:
        return await self.coordinator.set_key_state(name, "enable")

    async def schedule_key_deletion(
        self, name: str, *, days: int = DEFAULT_DELETION_DAYS, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        """After ``days`` (7..30, as AWS KMS) every holder erases its share; meanwhile the key
        serves nothing and :meth:`cancel_key_deletion` brings it back (disabled). A key with an
        approval policy needs its quorum's ``delete`` approvals."""
        return await self.coordinator.set_key_state(
            name, "schedule_deletion", days=days, approvals=approvals
        )

    async def cancel_key_deletion(self, name: str) -> KeyDescription:
        """Stop a scheduled deletion; the key is then disabled (enable it to use it)."""
        return await self.coordinator.set_key_state(name, "cancel_deletion")

    async def refresh_key(self, name: str, *, approvals: Sequence[bytes] = ()) -> KeyDescription:
        """Proactive refresh: the same public key, new shares on every holder, the next epoch;
        the old shares and everything made with them are destroyed once every holder has the
        new one (an interrupted refresh is finished or abandoned first)."""
        return await self.coordinator.refresh_key(name, approvals=approvals)

    async def reshare_key(
        self,
        name: str,
        *,
        nodes: Sequence[str],
        threshold: int,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        """Move the key to the committee ``nodes`` with ``threshold`` (t: t+1 sign), the same
        public key, the next epoch; old holders leaving the committee erase their shares once
        every new member holds its own (an interrupted reshare is finished or abandoned first)."""
        return await self.coordinator.reshare_key(
            name, nodes=nodes, threshold=threshold, approvals=approvals
        )

    async def repair_key(
        self, name: str, node_id: str, *, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        """Give ``node_id`` (a holder that lost its share) the same share back from t+1 helpers."""
        return await self.coordinator.repair_key(name, node_id, approvals=approvals)

    # -- signing --------------------------------------------------------------------------

    async def sign(
        self, name: str, message: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> bytes:
        """A verified signature of ``message``: FROST (RFC 9591 encoding) or ECDSA (DER, of
        SHA-256(message), low-S; ``path`` signs under a non-hardened BIP-32 child)."""
        key = await self.coordinator.describe_key(name)
        if key.suite.scheme is Scheme.ECDSA:
            return (await self.sign_ecdsa(name, message, approvals=approvals, path=path)).to_der()
        if key.suite.scheme is Scheme.BIP340 and not path:
            return await self.sign_bip340(name, message, approvals=approvals)
        if path:
            raise ConfigurationError("BIP-32 paths are for threshold-ECDSA keys")
        return await self.coordinator.sign(name, message, approvals=approvals)

    async def sign_many(self, name: str, messages: Sequence[bytes]) -> list[bytes]:
        """Many signatures in one round trip per signer (see :meth:`sign`)."""
        key = await self.coordinator.describe_key(name)
        if key.suite.scheme is Scheme.ECDSA:
            return [s.to_der() for s in await self.coordinator.sign_ecdsa_many(name, messages)]
        return await self.coordinator.sign_many(name, messages)

    async def sign_ecdsa(
        self, name: str, message: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> EcdsaSignature:
        return await self.coordinator.sign_ecdsa(name, message, approvals=approvals, path=path)

    async def sign_ecdsa_digest(
        self, name: str, digest: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> EcdsaSignature:
        """ECDSA-sign a SHA-256 digest computed elsewhere (32 bytes; AWS KMS's MessageType
        DIGEST). Approvals are those the whole message would need: they name the same digest."""
        return await self.coordinator.sign_ecdsa(
            name, digest, approvals=approvals, path=path, prehashed=True
        )

    async def sign_bip340(
        self,
        name: str,
        message: bytes,
        *,
        taproot: bool = False,
        merkle_root: bytes = b"",
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """A 64-byte BIP-340 signature by a ``bip340`` key (BIP-445 among t+1 holders), for its
        x-only key or, with ``taproot``, for its BIP-341 output key (``merkle_root``: the script
        tree's, empty for key-path only); verified with libsecp256k1. Approvals name the key
        that verifies (the output key with ``taproot``)."""
        tweaks: list[bytes] = []
        if taproot:
            key = await self.coordinator.describe_key(name)
            internal = key.xonly_public_key()
            if internal is None:
                raise InvalidInputError(f"key {name!r} is {key.suite.name}: no Taproot")
            tweaks.append(taproot_tweak(internal, merkle_root))
        elif merkle_root:
            raise InvalidInputError("a Taproot script tree root needs taproot=True")
        return await self.coordinator.sign_bip340(name, message, tweaks=tweaks, approvals=approvals)

    # -- encryption -----------------------------------------------------------------------

    async def encrypt(self, name: str, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """Encrypt to the key (on this machine; no node takes part). ``context`` is public
        associated data that decryption must repeat. At most :data:`MAX_PLAINTEXT` bytes (encrypt
        a data key for more); refused for a key that cannot decrypt: whatever this returns,
        :meth:`decrypt` accepts."""
        return await self.coordinator.encrypt(name, plaintext, context)

    async def decrypt(
        self, name: str, ciphertext: bytes, *, context: bytes = b"", approvals: Sequence[bytes] = ()
    ) -> bytes:
        """Threshold decryption: t+1 nodes' partials, each proven, combined on this machine.
        Ciphertexts are at most :data:`MAX_CIPHERTEXT` bytes."""
        return await self.coordinator.decrypt(name, ciphertext, context, approvals=approvals)

    # -- backup ---------------------------------------------------------------------------

    async def backup_key(
        self, name: str, recovery_key: bytes, *, approvals: Sequence[bytes] = ()
    ) -> Backup:
        """Every reachable holder's share verifiably encrypted to ``recovery_key`` (raw X25519
        public key, :func:`keyshard.client.backup.load_recovery_public_key`), verified here;
        ``Backup.encode()`` is the file. The key's policy needs its quorum for this."""
        return await self.coordinator.backup(name, recovery_key, approvals=approvals)

    async def restore_key(
        self,
        backup: Backup,
        recovery_private_key: X25519PrivateKey,
        *,
        nodes: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        """Re-deal a verified backup's shares into this cluster's attested enclaves (party i to
        ``nodes[i-1]``, default the first n nodes); the key keeps its public key and policy, and
        each node checks ``approvals`` against that policy."""
        return await self.coordinator.restore(
            backup, recovery_private_key, nodes=nodes, approvals=approvals
        )

    # -- threshold PRF --------------------------------------------------------------------

    async def encryption_keys(self, name: str, count: int = 1) -> list[tuple[bytes, bytes]]:
        """``count`` fresh ``(seed, key)`` pairs of the key's threshold PRF (32-byte AES keys):
        keep the seed with the ciphertext; :meth:`decryption_keys` re-derives the key from it.
        The seeds are one-way hashes of random nonces, so no caller can aim one at an existing
        seed (the XKS proxy's encrypt-only guarantee)."""
        nonces = [os.urandom(32) for _ in range(count)]
        return await self.coordinator.prf(name, PrfMode.ENCRYPT, nonces)

    async def decryption_keys(self, name: str, seeds: Sequence[bytes]) -> list[bytes]:
        """The PRF keys at ``seeds`` (refused by the nodes for a key whose policy wants
        decryption approvals)."""
        return [key for _, key in await self.coordinator.prf(name, PrfMode.DECRYPT, seeds)]

    # -- receipts -------------------------------------------------------------------------

    async def receipts(self, digests: Sequence[bytes]) -> list[Receipt]:
        """Every node's verified receipts for this client's successful operations on
        ``digests`` (:mod:`keyshard.client.receipts`): each signed by the node's attested
        identity key, checked against this profile's root and releases before it is returned."""
        found = await collect_receipts(self.coordinator, digests)
        for receipt in found:
            verify_receipt(receipt, self._trust)
        return found

    async def signature_receipts(self, message: bytes) -> list[Receipt]:
        """Receipts of the nodes that signed ``message`` for this client (any key, any time
        in the nodes' recent records; :meth:`receipts`)."""
        return await self.receipts([message_digest(message)])

    async def decryption_receipts(
        self, ciphertext: bytes, *, context: bytes = b""
    ) -> list[Receipt]:
        """Receipts of the nodes that decrypted ``ciphertext`` under ``context`` for this client."""
        return await self.receipts([decryption_digest(ciphertext, context)])

    # -- audit checkpoints peers witness --------------------------------------------------

    async def witness_audit_checkpoints(self) -> int:
        """Have every node's audit checkpoint (the head of what its parent stored, signed by
        the node) witnessed by its reachable peers now — the cheap way to protect a quiet
        cluster's log tails (changes of key state do it anyway). The number of (node, peer)
        checkpoint records now held."""
        return await self.coordinator.witness_audit_checkpoints()

    async def audit_checkpoints(self) -> list[Witnessed]:
        """Every reachable peer's signed record of each node's audit checkpoint
        (:mod:`keyshard.client.checkpoints`), each checked against this profile's root and
        releases before it is returned: what ``keyshard audit verify --witnessed`` holds a
        stored log to."""
        found = await collect_checkpoints(self.coordinator)
        for entry in found:
            verify_witnessed(entry, self._trust)
        return found


class Client:
    """The same operations as :class:`AsyncClient`, blocking; ``with`` closes it.

    It runs its own event loop in a daemon thread, so it works inside programs that have none
    (and inside ones that do, from another thread).
    """

    def __init__(self, inner_factory: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="keyshard", daemon=True)
        self._thread.start()
        try:
            self._inner: AsyncClient = self._run(self._build(inner_factory))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _build(factory: Any) -> AsyncClient:
        client: AsyncClient = factory()
        return client

    @classmethod
    def from_profile(
        cls,
        path: str | os.PathLike[str],
        *,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> Client:
        return cls(lambda: AsyncClient.from_profile(path, cert=cert, key=key))

    @classmethod
    def from_env(cls) -> Client:
        return cls(AsyncClient.from_env)

    def _run(self, work: Coroutine[Any, Any, _T] | Awaitable[_T]) -> _T:
        async def wrapped() -> _T:
            return await work

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._inner.close())
        self._stop()

    @property
    def profile(self) -> ClusterProfile:
        return self._inner.profile

    def create_key(
        self,
        name: str,
        *,
        suite: str = "ed25519",
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
        exportable: bool = False,
    ) -> KeyDescription:
        return self._run(
            self._inner.create_key(
                name,
                suite=suite,
                threshold=threshold,
                nodes=nodes,
                policy=policy,
                exportable=exportable,
            )
        )

    def describe_key(self, name: str, *, refresh: bool = False) -> KeyDescription:
        return self._run(self._inner.describe_key(name, refresh=refresh))

    def list_keys(self) -> list[str]:
        return self._run(self._inner.list_keys())

    def update_policy(
        self, name: str, policy: ApprovalPolicy | None, *, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        return self._run(self._inner.update_policy(name, policy, approvals=approvals))

    def policy_history(self, name: str) -> list[PolicyRecord]:
        return self._run(self._inner.policy_history(name))

    def disable_key(self, name: str) -> KeyDescription:
        return self._run(self._inner.disable_key(name))

    def enable_key(self, name: str) -> KeyDescription:
        return self._run(self._inner.enable_key(name))

    def schedule_key_deletion(
        self, name: str, *, days: int = DEFAULT_DELETION_DAYS, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        return self._run(self._inner.schedule_key_deletion(name, days=days, approvals=approvals))

    def cancel_key_deletion(self, name: str) -> KeyDescription:
        return self._run(self._inner.cancel_key_deletion(name))

    def refresh_key(self, name: str, *, approvals: Sequence[bytes] = ()) -> KeyDescription:
        return self._run(self._inner.refresh_key(name, approvals=approvals))

    def reshare_key(
        self,
        name: str,
        *,
        nodes: Sequence[str],
        threshold: int,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        return self._run(
            self._inner.reshare_key(name, nodes=nodes, threshold=threshold, approvals=approvals)
        )

    def repair_key(
        self, name: str, node_id: str, *, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        return self._run(self._inner.repair_key(name, node_id, approvals=approvals))

    def sign(
        self, name: str, message: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> bytes:
        return self._run(self._inner.sign(name, message, approvals=approvals, path=path))

    def sign_many(self, name: str, messages: Sequence[bytes]) -> list[bytes]:
        return self._run(self._inner.sign_many(name, messages))

    def sign_ecdsa(
        self, name: str, message: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> EcdsaSignature:
        return self._run(self._inner.sign_ecdsa(name, message, approvals=approvals, path=path))

    def sign_ecdsa_digest(
        self, name: str, digest: bytes, *, approvals: Sequence[bytes] = (), path: str = ""
    ) -> EcdsaSignature:
        return self._run(
            self._inner.sign_ecdsa_digest(name, digest, approvals=approvals, path=path)
        )

    def encrypt(self, name: str, plaintext: bytes, *, context: bytes = b"") -> bytes:
        return self._run(self._inner.encrypt(name, plaintext, context=context))

    def decrypt(
        self, name: str, ciphertext: bytes, *, context: bytes = b"", approvals: Sequence[bytes] = ()
    ) -> bytes:
        return self._run(
            self._inner.decrypt(name, ciphertext, context=context, approvals=approvals)
        )

    def backup_key(
        self, name: str, recovery_key: bytes, *, approvals: Sequence[bytes] = ()
    ) -> Backup:
        return self._run(self._inner.backup_key(name, recovery_key, approvals=approvals))

    def restore_key(
        self,
        backup: Backup,
        recovery_private_key: X25519PrivateKey,
        *,
        nodes: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        return self._run(
            self._inner.restore_key(backup, recovery_private_key, nodes=nodes, approvals=approvals)
        )

    def receipts(self, digests: Sequence[bytes]) -> list[Receipt]:
        return self._run(self._inner.receipts(digests))

    def signature_receipts(self, message: bytes) -> list[Receipt]:
        return self._run(self._inner.signature_receipts(message))

    def decryption_receipts(self, ciphertext: bytes, *, context: bytes = b"") -> list[Receipt]:
        return self._run(self._inner.decryption_receipts(ciphertext, context=context))

    def witness_audit_checkpoints(self) -> int:
        return self._run(self._inner.witness_audit_checkpoints())

    def audit_checkpoints(self) -> list[Witnessed]:
        return self._run(self._inner.audit_checkpoints())
