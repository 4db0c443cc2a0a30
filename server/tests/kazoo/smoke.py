#!/usr/bin/env python3
"""kazoo smoke test: python3 smoke.py HOST:PORT

Exercises create/get/set/children/watches/transactions/ephemerals/sequence nodes/ACLs and
the Lock recipe through kazoo (a third-party Python client), asserting every result.
Exits 0 on success; any failed assertion or exception exits non-zero with a traceback.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl

TIMEOUT = 10


def client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10, connection_retry={"max_tries": 3})
    zk.start(timeout=TIMEOUT)
    assert zk.state == KazooState.CONNECTED, zk.state
    return zk


def wait(event, what):
    assert event.wait(TIMEOUT), "timed out waiting for " + what


def main(hosts):
    zk = client(hosts)
    other = client(hosts)
    step = "start"
    try:
        # create / get / set / exists
        step = "create"
        assert zk.create("/smoke", b"v0") == "/smoke"
        data, stat = zk.get("/smoke")
        assert data == b"v0" and stat.version == 0 and stat.numChildren == 0, (data, stat)
        assert stat.dataLength == 2 and stat.ephemeralOwner == 0, stat
        try:
            zk.create("/smoke", b"dup")
            raise AssertionError("duplicate create succeeded")
        except NodeExistsError:
            pass
        step = "set"
        stat2 = zk.set("/smoke", b"v1", version=0)
        assert stat2.version == 1 and stat2.mzxid > stat.mzxid, stat2
        try:
            zk.set("/smoke", b"v2", version=0)
            raise AssertionError("set with stale version succeeded")
        except BadVersionError:
            pass
        assert zk.exists("/smoke/none") is None
        try:
            zk.get("/smoke/none")
            raise AssertionError("get of missing node succeeded")
        except NoNodeError:
            pass

        # children, sequence nodes, ensure_path
        step = "children"
        zk.ensure_path("/smoke/deep/er/path")
        assert zk.exists("/smoke/deep/er/path") is not None
        p1 = zk.create("/smoke/seq-", b"", sequence=True)
        p2 = zk.create("/smoke/seq-", b"", sequence=True)
        assert p1.startswith("/smoke/seq-") and len(p1) == len("/smoke/seq-") + 10, p1
        assert int(p2[-10:]) == int(p1[-10:]) + 1, (p1, p2)
        kids = sorted(zk.get_children("/smoke"))
        assert kids == sorted(["deep", p1.split("/")[-1], p2.split("/")[-1]]), kids
        kids2, stat = zk.get_children("/smoke", include_data=True)
        assert stat.numChildren == 3, stat
        try:
            zk.delete("/smoke/deep")
            raise AssertionError("delete of non-empty node succeeded")
        except NotEmptyError:
            pass

        # one-shot watches: data and children, fired by another session
        step = "watches"
        data_ev = threading.Event()
        data_events = []

        def on_data(event):
            data_events.append(event)
            data_ev.set()

        zk.get("/smoke", watch=on_data)
        other.set("/smoke", b"from-other")
        wait(data_ev, "data watch")
        assert data_events[0].type == EventType.CHANGED and data_events[0].path == "/smoke", data_events

        child_ev = threading.Event()
        child_events = []

        def on_child(event):
            child_events.append(event)
            child_ev.set()

        zk.get_children("/smoke", watch=on_child)
        other.create("/smoke/by-other", b"")
        wait(child_ev, "child watch")
        assert child_events[0].type == EventType.CHILD and child_events[0].path == "/smoke", child_events

        exists_ev = threading.Event()
        zk.exists("/smoke/later", watch=lambda e: exists_ev.set() if e.type == EventType.CREATED else None)
        other.create("/smoke/later", b"")
        wait(exists_ev, "exists watch (NodeCreated)")

        # DataWatch recipe sees the current value and later changes
        seen = []
        changed = threading.Event()

        @zk.DataWatch("/smoke/later")
        def watcher(data, stat):
            seen.append(data)
            if data == b"new":
                changed.set()

        other.set("/smoke/later", b"new")
        wait(changed, "DataWatch update")
        assert seen[0] == b"" and seen[-1] == b"new", seen

        # transactions
        step = "transaction"
        tx = zk.transaction()
        tx.create("/smoke/tx1", b"a")
        tx.set_data("/smoke", b"tx", version=-1)
        tx.check("/smoke/tx1", 0)
        results = tx.commit()
        assert results[0] == "/smoke/tx1" and results[2] is True, results
        assert zk.get("/smoke")[0] == b"tx"
        tx = zk.transaction()
        tx.create("/smoke/tx2", b"b")
        tx.delete("/smoke/does-not-exist")
        results = tx.commit()
        assert isinstance(results[1], NoNodeError), results
        assert zk.exists("/smoke/tx2") is None, "failed transaction was partially applied"

        # ephemeral nodes vanish when their session closes, and watchers hear about it
        step = "ephemeral"
        eph = client(hosts)
        eph.create("/smoke/eph", b"e", ephemeral=True)
        st = zk.exists("/smoke/eph")
        assert st is not None and st.ephemeralOwner == eph.client_id[0], (st, eph.client_id)
        gone = threading.Event()
        zk.exists("/smoke/eph", watch=lambda e: gone.set() if e.type == EventType.DELETED else None)
        eph.stop()
        eph.close()
        wait(gone, "ephemeral deletion after session close")
        assert zk.exists("/smoke/eph") is None

        # ACLs and digest auth
        step = "acl"
        acl = make_digest_acl("alice", "pw", all=True)
        zk.create("/smoke/secret", b"s", acl=[acl])
        try:
            other.get("/smoke/secret")
            raise AssertionError("read without auth succeeded")
        except NoAuthError:
            pass
        other.add_auth("digest", "alice:pw")
        assert other.get("/smoke/secret")[0] == b"s"
        acls, _ = other.get_acls("/smoke/secret")
        assert len(acls) == 1 and acls[0].id.scheme == "digest" and acls[0].id.id.startswith("alice:"), acls

        # Lock recipe: two contenders, mutual exclusion
        step = "lock"
        lock_a = zk.Lock("/smoke/lock", "a")
        lock_b = other.Lock("/smoke/lock", "b")
        assert lock_a.acquire(timeout=TIMEOUT)
        assert not lock_b.acquire(blocking=False)
        got_b = threading.Event()

        def take_b():
            if lock_b.acquire(timeout=TIMEOUT):
                got_b.set()

        t = threading.Thread(target=take_b)
        t.start()
        time.sleep(0.3)
        assert not got_b.is_set(), "lock b acquired while a holds it"
        contenders = lock_a.contenders()
        assert contenders == ["a", "b"], contenders
        lock_a.release()
        wait(got_b, "lock hand-over")
        t.join(TIMEOUT)
        lock_b.release()

        # recursive delete and cleanup
        step = "cleanup"
        zk.add_auth("digest", "alice:pw")
        zk.delete("/smoke", recursive=True)
        assert zk.exists("/smoke") is None
    except Exception:
        print("kazoo smoke failed at step: " + step, file=sys.stderr)
        raise
    finally:
        for c in (zk, other):
            try:
                c.stop()
                c.close()
            except Exception:
                pass
    print("kazoo smoke: OK")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: smoke.py HOST:PORT")
    main(sys.argv[1])
