"""The Keyshard client SDK: attested channels to nodes and the coordinator that drives the
protocols between them (the CLI is a thin layer over this package).

* :mod:`keyshard.client.credentials` — the client's TLS key and self-signed certificate;
* :mod:`keyshard.client.channel` — TLS 1.3 + attestation binding to one node;
* :mod:`keyshard.client.node` — typed requests on a channel;
* :mod:`keyshard.client.coordinator` — key creation (DKG relay), signing, decryption.
"""
