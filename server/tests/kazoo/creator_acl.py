#!/usr/bin/env python3
"""kazoo "creator all" ACL test:
python3 creator_acl.py HOST:PORT [--ca CA --cert CERT --key KEY --x509-id DN]

kazoo writes every empty jute string as null (length -1), so its CREATOR_ALL_ACL, Id("auth", ""),
reaches the server with a null id. After `add_auth("digest", ...)` ZooKeeper accepts it and
stores the caller's digest id. With --ca/--cert/--key the client connects over TLS
(use_ssl=True); its certificate then authenticates it as x509:DN (ZooKeeper's x509 provider),
so CREATOR_ALL_ACL expands to that id without add_auth. Exits 0 printing "kazoo creator acl: OK"; any failure exits non-zero.
"""

import argparse

from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.protocol.states import KazooState
from kazoo.security import (
    CREATOR_ALL_ACL,
    Permissions,
    make_digest_acl,
    make_digest_acl_credential,
)

TIMEOUT = 10


def client(args):
    kwargs = {}
    if args.ca:
        kwargs = dict(use_ssl=True, ca=args.ca, certfile=args.cert, keyfile=args.key, verify_certs=True)
    zk = KazooClient(hosts=args.hosts, timeout=10, connection_retry={"max_tries": 3}, **kwargs)
    zk.start(timeout=TIMEOUT)
    assert zk.state == KazooState.CONNECTED, zk.state
    return zk


def x509_creator(args):
    zk = client(args)
    try:
        zk.create("/creator-x509", b"cert", acl=CREATOR_ALL_ACL)
        acls, _ = zk.get_acls("/creator-x509")
        assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(Permissions.ALL, "x509", args.x509_id)], acls
        assert zk.get("/creator-x509")[0] == b"cert"
        zk.delete("/creator-x509")
    finally:
        zk.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hosts")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--x509-id")
    args = parser.parse_args()
    if args.x509_id:
        x509_creator(args)
        print("kazoo creator acl: OK")
        return

    owner = client(args)
    stranger = client(args)
    try:
        # Without an authenticated id the auth scheme has nothing to expand to.
        try:
            stranger.create("/creator-unauth", b"", acl=CREATOR_ALL_ACL)
            raise AssertionError("CREATOR_ALL_ACL without add_auth was accepted")
        except InvalidACLError:
            pass

        owner.add_auth("digest", "user:pw")
        owner.create("/creator", b"mine", acl=CREATOR_ALL_ACL)
        acls, _ = owner.get_acls("/creator")
        expected = make_digest_acl_credential("user", "pw")
        assert len(acls) == 1, acls
        assert acls[0].perms == Permissions.ALL, acls
        assert (acls[0].id.scheme, acls[0].id.id) == ("digest", expected), acls

        # The same id set explicitly, and setACL with the creator ACL.
        owner.create("/digest", b"d", acl=[make_digest_acl("user", "pw", all=True)])
        owner.set_acls("/digest", CREATOR_ALL_ACL)
        acls, stat = owner.get_acls("/digest")
        assert (acls[0].id.scheme, acls[0].id.id, stat.aversion) == ("digest", expected, 1), (acls, stat)

        try:
            stranger.get("/creator")
            raise AssertionError("read without auth succeeded")
        except NoAuthError:
            pass
        stranger.add_auth("digest", "user:pw")
        assert stranger.get("/creator")[0] == b"mine"
        owner.delete("/creator")
        owner.delete("/digest")
    finally:
        owner.stop()
        stranger.stop()
    print("kazoo creator acl: OK")


if __name__ == "__main__":
    main()
