"""``keyshard gateway`` — serve the AWS KMS API over the cluster's threshold keys.

Needs the ``gateway`` extra (``pip install 'keyshard[gateway]'``: h11, the HTTP parser); without
it the command says so in one line (exit 1). The gateway is a client of the cluster (its own client certificate; it holds no share) that
speaks AWS KMS's JSON protocol with SigV4, so boto3, the AWS CLI and the AWS Encryption SDK work
unchanged against threshold keys. It runs in the foreground until SIGTERM or Ctrl-C.

Exit codes: 0 stopped cleanly; 1 a local error (flags, configuration, TLS files, the port).
"""

# ruff: noqa: PLC0415 -- handlers import their machinery themselves (keyshard.cli.main, rule 3)

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyshard.cli.errors import MissingExtraError, UsageError
from keyshard.cli.exit_codes import EXIT_OK

_EPILOG = """\
examples:
  keyshard gateway --profile prod/profile.json --config gateway.json --state /var/lib/ks-gw \\
      --listen 0.0.0.0:8443 --tls-cert gw.pem --tls-key gw-key.pem
  keyshard gateway --profile .keyshard/dev/profile.json --config gw.json --state gw \\
      --listen 127.0.0.1:4599                 plain HTTP: loopback only
  aws kms sign --endpoint-url https://gw:8443 --key-id alias/wallet ...

--config holds the access keys (JSON, mode 0600) and what each may do; --state keeps the key
registry (KMS key ids, specs, aliases). 'keyshard dev gateway' sets all of this up for a dev
cluster and writes <dir>/gateway.json.
exit codes: 0 stopped; 1 local error.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "gateway",
        help="serve the AWS KMS API (boto3, AWS CLI) over the cluster's threshold keys",
        description=(
            "Serve the AWS KMS JSON 1.1 API, SigV4-authenticated, over the cluster's threshold\n"
            "keys: CreateKey, DescribeKey, ListKeys, aliases, GetPublicKey, Sign, Verify, Encrypt,\n"
            "Decrypt, GenerateDataKey(WithoutPlaintext), ReEncrypt, GenerateRandom."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", type=Path, required=True, help="the cluster profile")
    parser.add_argument("--config", type=Path, required=True, help="access keys (JSON, 0600)")
    parser.add_argument("--state", type=Path, required=True, help="directory of the key registry")
    parser.add_argument(
        "--listen", default="127.0.0.1:4599", help="HOST:PORT (default 127.0.0.1:4599)"
    )
    parser.add_argument("--tls-cert", type=Path, help="the gateway's TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument("--cert", type=Path, help="the gateway's cluster client certificate")
    parser.add_argument("--key", type=Path, help="its private key")
    parser.add_argument(
        "--threshold", type=int, help="degree t of keys CreateKey makes (default: the SDK's)"
    )
    parser.add_argument(
        "--witness-every",
        type=float,
        metavar="SECONDS",
        help=(
            "have every node's audit checkpoint witnessed by its peers this often, so a parent "
            "cannot cut a stored audit log's tail unseen for longer (0: never; default 60)"
        ),
    )
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("h11") is None:  # before importing anything that needs it
        raise MissingExtraError("gateway", "h11")
    from keyshard.client.errors import ClientError
    from keyshard.gateway.config import ConfigError
    from keyshard.gateway.registry import RegistryError
    from keyshard.gateway.run import WITNESS_EVERY_SECONDS, GatewayOptions, serve_forever
    from keyshard.gateway.server import Listener, ServerError, parse_listen

    witness_every = WITNESS_EVERY_SECONDS if args.witness_every is None else args.witness_every
    if not witness_every >= 0:  # also refuses nan
        raise UsageError("--witness-every takes seconds >= 0 (0: never)")
    try:
        host, port = parse_listen(args.listen)
        listener = Listener(host, port, args.tls_cert, args.tls_key)
        options = GatewayOptions(
            args.profile,
            args.config,
            args.state,
            listener,
            args.cert,
            args.key,
            args.threshold,
            args.ready_file,
            witness_every,
        )
        serve_forever(
            options, lambda url: print(f"keyshard gateway: serving {url}", file=sys.stderr)
        )
    except (ServerError, ConfigError, RegistryError, ClientError, OSError) as error:
        raise UsageError(str(error)) from None
    return EXIT_OK
