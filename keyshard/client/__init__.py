"""The Keyshard client SDK: attested channels to nodes and the coordinator that drives the
protocols between them (the CLI is a thin layer over this package).

* :mod:`keyshard.client.sdk` — :class:`Client` and :class:`AsyncClient`, the facade to start from;
* :mod:`keyshard.client.profile` — the cluster profile (dev clusters and Terraform write it);
* :mod:`keyshard.client.credentials` — the client's TLS key and self-signed certificate;
* :mod:`keyshard.client.channel` — TLS 1.3 + attestation binding to one node, multiplexed;
* :mod:`keyshard.client.coordinator` — key creation (DKG relay), signing, decryption;
* :mod:`keyshard.client.errors` — the one error tree, each error with a code.
"""
