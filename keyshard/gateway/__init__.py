"""Keyshard speaks AWS KMS: the ``keyshard gateway`` server, a client of the cluster.

Existing code that calls AWS KMS — boto3, the AWS CLI, the AWS Encryption SDK — works unchanged
against threshold keys by pointing its endpoint at the gateway. The gateway holds no share: it
reaches the cluster through the SDK like any client, and every signature or decryption still
takes t+1 enclaves.

* :mod:`~keyshard.gateway.sigv4` — AWS Signature Version 4, verified (sans-I/O);
* :mod:`~keyshard.gateway.http_server` — HTTP/1.1 on asyncio streams with h11;
* :mod:`~keyshard.gateway.kms_api` — the KMS JSON 1.1 endpoint (authentication, dispatch, errors);
* :mod:`~keyshard.gateway.operations` — the KMS operations over the SDK;
* :mod:`~keyshard.gateway.envelope` — ciphertext blobs and encryption-context binding;
* :mod:`~keyshard.gateway.config`, :mod:`~keyshard.gateway.registry` — who may call, and the keys'
  KMS ids, specs and aliases;
* :mod:`~keyshard.gateway.server`, :mod:`~keyshard.gateway.run` — listening and the process.
"""
