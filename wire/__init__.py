"""What the frames between Keyshard's parts mean: the one strict canonical CBOR codec, the node
service's versioned request/reply messages with their error codes, approval and policy types with
their digests, and the channel binding a node's attestation document carries.

``wire`` is a leaf: it imports nothing else of Keyshard, so the client, the enclave, the parent
and the attestation library can all speak it without importing each other. What both ends of a
channel must agree on lives here, never inside one of them.
"""
