"""An offline node in the dev cluster (issue 11): the node keeps running, but the cluster's
profile stops listing it, so online clients cannot reach it, and the air-gapped side gets a
profile of its own that lists that node only, with an inbox and an outbox directory:

    <dir>/offline/<node>/profile.json, client/ (the dev client's credentials), inbox/, outbox/

``keyshard offline ... --profile <dir>/offline/<node>/profile.json`` then plays the air-gapped
side: it reaches that node only — not its peers, so after a reboot the node is witnessed by file
(``keyshard offline witness-*``) — and files move between the two sides by hand. ``dev online``
lists the node again; ``dev up`` rewrites the profile with every node (``dev up --offline NODE``
then takes NODE offline again, right after the boot).

What this emulates is the air gap between clients and the node (the only network an offline node
would lose that matters here: nodes never talk to each other directly, the client relays).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from keyshard.client.credentials import CERT_FILE, KEY_FILE
from keyshard.client.profile import ClusterProfile

__all__ = ["OfflineError", "bring_online", "offline_dir", "take_offline"]

PROFILE_FILE = "profile.json"


class OfflineError(Exception):
    """The node cannot be taken offline or brought back (unknown, or already so)."""


def offline_dir(directory: Path, node_id: str) -> Path:
    return directory / "offline" / node_id


def take_offline(directory: Path, node_id: str) -> Path:
    """Drop ``node_id`` from the cluster's profile and write the air-gapped side's; its dir."""
    profile_path = directory / PROFILE_FILE
    profile = ClusterProfile.load(profile_path)
    entries = [n for n in profile.nodes if n.node_id == node_id]
    if not entries:
        raise OfflineError(f"{node_id} is not in {profile_path} (unknown, or offline already)")
    if len(profile.nodes) == 1:
        raise OfflineError("the last online node cannot go offline")
    target = offline_dir(directory, node_id)
    (target / "client").mkdir(parents=True, exist_ok=True)
    for name in (CERT_FILE, KEY_FILE):
        shutil.copy2(directory / "client" / name, target / "client" / name)  # modes kept (0600)
    for box in ("inbox", "outbox"):
        (target / box).mkdir(exist_ok=True)
    replace(profile, nodes=tuple(entries)).write(target / PROFILE_FILE)
    online = tuple(n for n in profile.nodes if n.node_id != node_id)
    replace(profile, nodes=online).write(profile_path)
    return target


def bring_online(directory: Path, node_id: str) -> None:
    """List ``node_id`` in the cluster's profile again (its offline directory stays)."""
    profile_path = directory / PROFILE_FILE
    offline = offline_dir(directory, node_id) / PROFILE_FILE
    if not offline.exists():
        raise OfflineError(f"{node_id} is not offline (no {offline})")
    profile = ClusterProfile.load(profile_path)
    if any(n.node_id == node_id for n in profile.nodes):
        raise OfflineError(f"{node_id} is online already")
    [entry] = ClusterProfile.load(offline).nodes
    nodes = tuple(sorted((*profile.nodes, entry), key=lambda n: n.node_id))
    replace(profile, nodes=nodes).write(profile_path)
    offline.unlink()
