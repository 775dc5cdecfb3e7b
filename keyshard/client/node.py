"""Typed requests to one node over its attested channel (one method per service request)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from enclave.service.messages import (
    Commitments,
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    Message,
    Partial,
    Presigned,
    PresignStart,
    PresignStep,
    SignatureShareReply,
    SignCommit,
    SignShare,
)
from keyshard.client.channel import NodeChannel
from keyshard.client.errors import ProtocolError

__all__ = ["NodeClient"]

_R = TypeVar("_R", bound=Message)


class NodeClient:
    def __init__(self, channel: NodeChannel) -> None:
        self.channel = channel

    @property
    def node_id(self) -> str:
        return self.channel.node_id

    async def _call(self, request: Message, expected: type[_R]) -> _R:
        reply = await self.channel.request(request)
        if not isinstance(reply, expected):
            raise ProtocolError(f"{self.node_id} answered {request.OP} with {reply.OP}")
        return reply

    async def key_create(
        self,
        key_name: str,
        suite: str,
        threshold: int,
        session_id: bytes,
        participants: Mapping[str, bytes],
        *,
        policy: bytes = b"",
    ) -> DkgOutbox:
        return await self._call(
            KeyCreate(key_name, suite, threshold, session_id, participants, policy), DkgOutbox
        )

    async def dkg_step(self, key_name: str, inbox: Sequence[bytes]) -> DkgOutbox | KeyCreated:
        reply = await self.channel.request(DkgStep(key_name, tuple(inbox)))
        if not isinstance(reply, DkgOutbox | KeyCreated):
            raise ProtocolError(f"{self.node_id} answered dkg_step with {reply.OP}")
        return reply

    async def key_info(self, key_name: str) -> KeyInfoReply:
        return await self._call(KeyInfo(key_name), KeyInfoReply)

    async def sign_commit(
        self,
        key_name: str,
        session_id: bytes,
        message_digest: bytes,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        request = SignCommit(key_name, session_id, message_digest, tuple(approvals))
        return (await self._call(request, Commitments)).commitments

    async def sign_share(
        self, session_id: bytes, package: bytes, approvals: Sequence[bytes] = ()
    ) -> bytes:
        request = SignShare(session_id, package, tuple(approvals))
        return (await self._call(request, SignatureShareReply)).share

    async def decrypt_partial(
        self,
        key_name: str,
        ciphertext: bytes,
        session_id: bytes,
        context: bytes = b"",
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        request = DecryptPartial(key_name, ciphertext, session_id, context, tuple(approvals))
        return (await self._call(request, Partial)).partial

    async def presign_start(
        self, key_name: str, session_id: bytes, participants: Mapping[str, bytes]
    ) -> DkgOutbox:
        return await self._call(PresignStart(key_name, session_id, participants), DkgOutbox)

    async def presign_step(
        self, key_name: str, session_id: bytes, inbox: Sequence[bytes]
    ) -> DkgOutbox | Presigned:
        reply = await self.channel.request(PresignStep(key_name, session_id, tuple(inbox)))
        if not isinstance(reply, DkgOutbox | Presigned):
            raise ProtocolError(f"{self.node_id} answered presign_step with {reply.OP}")
        return reply

    async def ecdsa_sign(
        self,
        key_name: str,
        presignature_id: bytes,
        message: bytes,
        entropy: bytes,
        *,
        approvals: Sequence[bytes] = (),
        path: str = "",
    ) -> bytes:
        request = EcdsaSign(key_name, presignature_id, message, entropy, tuple(approvals), path)
        return (await self._call(request, SignatureShareReply)).share

    async def close(self) -> None:
        await self.channel.close()
