// Apache Curator smoke test for a ZooKeeper-compatible server (driven by server/tests/curator.rs).
//
// Usage: java -cp <curator + zookeeper jars>:<classes> CuratorSmoke HOST:PORT[,HOST:PORT...]
//
// Checks, in order: connect (two sessions; in an ensemble the second is pinned to another
// server), ensemble-config (/zookeeper/config as Curator's EnsembleTracker reads it, and in an
// ensemble its members in getCurrentConfig()), create
// (parents, containers), get-set-version (BadVersion), get-children, delete (recursive,
// versions), watches (one-shot, persistent, removal, sync), sequential (persistent, ephemeral,
// protected), transaction-commit, transaction-abort (atomic), curator-cache, mutex
// (InterProcessMutex contention), leader-latch, atomic-long (DistributedAtomicLong), shared-count
// and close. The server must be fresh (no /smoke).
//
// Every check asserts its results; it prints "ok <check>" when it passes and "CURATOR-OK" after
// the last one. On the first mismatch it prints "FAIL <check>: <what>" and exits 1; a watchdog
// exits 2 if the whole run takes longer than WATCHDOG_SECONDS. Plain Java, no build tool.

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.CuratorEventType;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public final class CuratorSmoke {
    private static final int WATCHDOG_SECONDS = 45;
    /** Bound of every wait for an event, a lock, a leader or a connection. */
    private static final long WAIT_MS = 10_000;

    private static volatile String current = "startup";
    private static String connectString;

    /** A failed assertion. */
    private static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    private interface Body {
        void run() throws Exception;
    }

    private interface Condition {
        boolean holds() throws Exception;
    }

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: CuratorSmoke HOST:PORT[,HOST:PORT...]");
            System.exit(2);
        }
        connectString = args[0];
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(WATCHDOG_SECONDS * 1000L);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("FAIL " + current + ": watchdog: still running after " + WATCHDOG_SECONDS + " s");
            System.out.flush();
            Runtime.getRuntime().halt(2);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        try {
            run();
        } catch (CheckFailed e) {
            fail(e.getMessage(), null);
        } catch (Throwable t) {
            fail("unexpected " + t, t);
        }
        System.out.println("CURATOR-OK");
        System.out.flush();
        // Curator and ZooKeeper leave non-daemon threads behind in some versions: exit explicitly.
        System.exit(0);
    }

    private static void fail(String message, Throwable t) {
        System.out.println("FAIL " + current + ": " + message);
        System.out.flush();
        if (t != null) {
            t.printStackTrace();
        }
        System.err.flush();
        Runtime.getRuntime().halt(1);
    }

    // ---- assertion helpers -------------------------------------------------------------------

    private static void step(String name, Body body) throws Exception {
        current = name;
        body.run();
        System.out.println("ok " + name);
        System.out.flush();
    }

    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new CheckFailed(what);
        }
    }

    private static void eq(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new CheckFailed(what + ": expected <" + expected + ">, got <" + actual + ">");
        }
    }

    /** Runs body and returns the KeeperException it must throw, of exactly the given code. */
    private static KeeperException expectKeeper(KeeperException.Code code, String what, Body body)
            throws Exception {
        try {
            body.run();
        } catch (KeeperException e) {
            eq(code, e.code(), what + " (KeeperException code)");
            return e;
        }
        throw new CheckFailed(what + ": expected KeeperException " + code + ", but it succeeded");
    }

    private static void waitFor(String what, Condition condition) throws Exception {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (!condition.holds()) {
            if (System.currentTimeMillis() > deadline) {
                throw new CheckFailed("timed out after " + WAIT_MS + " ms waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    private static String next(BlockingQueue<String> queue, String what) throws InterruptedException {
        String event = queue.poll(WAIT_MS, TimeUnit.MILLISECONDS);
        if (event == null) {
            throw new CheckFailed("timed out after " + WAIT_MS + " ms waiting for " + what);
        }
        return event;
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String s(byte[] bytes) {
        return bytes == null ? "null" : new String(bytes, StandardCharsets.UTF_8);
    }

    /** ZooKeeper's client with its (test-only, protected) remote address made visible. */
    private static final class SmokeZooKeeper extends ZooKeeper {
        SmokeZooKeeper(String connect, int sessionTimeout, Watcher watcher, boolean canBeReadOnly)
                throws IOException {
            super(connect, sessionTimeout, watcher, canBeReadOnly);
        }

        int serverPort() {
            SocketAddress remote = testableRemoteSocketAddress();
            return remote instanceof InetSocketAddress ? ((InetSocketAddress) remote).getPort() : -1;
        }
    }

    private static CuratorFramework newClient(String connect) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connect)
                .sessionTimeoutMs(15_000)
                .connectionTimeoutMs(5_000)
                .retryPolicy(new ExponentialBackoffRetry(100, 5))
                .zookeeperFactory(SmokeZooKeeper::new)
                .build();
        client.start();
        if (!client.blockUntilConnected((int) WAIT_MS, TimeUnit.MILLISECONDS)) {
            throw new CheckFailed("no connection to " + connect + " within " + WAIT_MS + " ms");
        }
        return client;
    }

    /** The client port of the server this client is connected to. */
    private static int serverPort(CuratorFramework c) throws Exception {
        return ((SmokeZooKeeper) c.getZookeeperClient().getZooKeeper()).serverPort();
    }

    /** The client ports named by a connect string. */
    private static Set<Integer> ports(String connect) {
        Set<Integer> ports = new TreeSet<>();
        for (String host : connect.split(",")) {
            ports.add(Integer.parseInt(host.substring(host.lastIndexOf(':') + 1).trim()));
        }
        return ports;
    }

    /**
     * A client pinned to a server none of `busy` is connected to, when the connect string names
     * enough servers (so that, in an ensemble, recipes are exercised across servers); otherwise a
     * client on the whole connect string.
     */
    private static CuratorFramework newClientAvoiding(CuratorFramework... busy) throws Exception {
        Set<Integer> taken = new TreeSet<>();
        for (CuratorFramework c : busy) {
            taken.add(serverPort(c));
        }
        for (String host : connectString.split(",")) {
            if (!taken.contains(ports(host).iterator().next())) {
                CuratorFramework c = newClient(host.trim());
                check(!taken.contains(serverPort(c)), "pinned client on " + host + " is on " + serverPort(c));
                return c;
            }
        }
        return newClient(connectString);
    }

    private static long sessionId(CuratorFramework client) throws Exception {
        return client.getZookeeperClient().getZooKeeper().getSessionId();
    }

    private static int sequenceOf(String path, Pattern pattern) {
        Matcher m = pattern.matcher(path);
        check(m.matches(), "sequential path " + path + " does not match " + pattern.pattern());
        return Integer.parseInt(m.group(1));
    }

    // ---- the checks --------------------------------------------------------------------------

    private static CuratorFramework client;
    private static CuratorFramework other;

    private static void run() throws Exception {
        step("connect", () -> {
            client = newClient(connectString);
            other = newClientAvoiding(client);
            check(client.getZookeeperClient().isConnected(), "client reports connected");
            check(ports(connectString).contains(serverPort(client)), "client connected to a listed server");
            System.out.println("info: main client on port " + serverPort(client) + ", second client on port "
                    + serverPort(other));
            check(sessionId(client) != 0 && sessionId(client) != sessionId(other), "two distinct sessions");
            eq(15_000, client.getZookeeperClient().getZooKeeper().getSessionTimeout(), "negotiated session timeout");
            check(client.checkExists().forPath("/smoke") == null, "/smoke must not exist yet (a fresh server)");
        });

        step("ensemble-config", () -> {
            // Curator's EnsembleTracker watches /zookeeper/config and replaces the connect string
            // with the client addresses found there: they must be the servers' real client ports.
            String config = s(client.getConfig().forEnsemble());
            System.out.println("info: /zookeeper/config: " + config.replace("\n", " | "));
            for (String line : config.split("\n")) {
                int semi = line.indexOf(';');
                if (!line.startsWith("server.") || semi < 0) {
                    continue;
                }
                int port = Integer.parseInt(line.substring(line.lastIndexOf(':') + 1).trim());
                check(ports(connectString).contains(port), "config line '" + line + "' names client port "
                        + port + ", not one of " + connectString);
            }
            // In an ensemble: one server line per member and a version; when the lines carry
            // client addresses, the tracker takes the configuration (getCurrentConfig(), what
            // applications see) and lists every member (without them it ignores it).
            int hosts = connectString.split(",").length;
            if (hosts > 1) {
                long members = Arrays.stream(config.split("\n")).filter(l -> l.startsWith("server.")).count();
                eq((long) hosts, members, "server lines in /zookeeper/config");
                check(config.contains("\nversion="), "a version line in /zookeeper/config");
            }
            if (hosts > 1 && config.contains(";")) {
                long deadline = System.currentTimeMillis() + 10_000;
                while (client.getCurrentConfig().getAllMembers().size() != hosts
                        && System.currentTimeMillis() < deadline) {
                    Thread.sleep(50);
                }
                eq(hosts, client.getCurrentConfig().getAllMembers().size(), "members in the EnsembleTracker's config");
            }
        });

        step("create", () -> {
            String created = client.create().creatingParentsIfNeeded().forPath("/smoke/a/b/c", b("hello"));
            eq("/smoke/a/b/c", created, "create returns the path");
            for (String parent : List.of("/smoke", "/smoke/a", "/smoke/a/b")) {
                Stat st = client.checkExists().forPath(parent);
                check(st != null, parent + " created as a parent");
                eq(0L, st.getEphemeralOwner(), parent + " ephemeralOwner (persistent)");
                eq(0, st.getDataLength(), parent + " dataLength");
            }
            // The recipes' variant creates missing parents as containers (createContainer); ZooKeeper
            // reports a container's ephemeralOwner to clients as 0.
            client.create().creatingParentContainersIfNeeded().forPath("/smoke/box/inner/leaf", b("x"));
            for (String parent : List.of("/smoke/box", "/smoke/box/inner")) {
                Stat st = client.checkExists().forPath(parent);
                check(st != null, parent + " created as a container parent");
                eq(0L, st.getEphemeralOwner(), parent + " ephemeralOwner (container, as clients see it)");
                eq(1, st.getNumChildren(), parent + " numChildren");
            }
            eq(0L, client.checkExists().forPath("/smoke/box/inner/leaf").getEphemeralOwner(),
                    "leaf under containers ephemeralOwner");
            Stat leaf = client.checkExists().forPath("/smoke/a/b/c");
            eq(0L, leaf.getEphemeralOwner(), "leaf ephemeralOwner");
            eq(5, leaf.getDataLength(), "leaf dataLength");
            eq(0, leaf.getVersion(), "leaf version");
            eq(1, client.checkExists().forPath("/smoke/a/b").getNumChildren(), "/smoke/a/b numChildren");
            eq(ZooDefs.Ids.OPEN_ACL_UNSAFE, client.getACL().forPath("/smoke/a/b/c"), "default ACL");
            expectKeeper(KeeperException.Code.NODEEXISTS, "create an existing node",
                    () -> client.create().forPath("/smoke/a/b/c"));
            expectKeeper(KeeperException.Code.NONODE, "create without parents",
                    () -> client.create().forPath("/smoke/missing/x"));
            waitFor("the other session to see /smoke/a/b/c",
                    () -> other.checkExists().forPath("/smoke/a/b/c") != null);
        });

        step("get-set-version", () -> {
            String p = "/smoke/a/b/c";
            Stat st = new Stat();
            eq("hello", s(client.getData().storingStatIn(st).forPath(p)), "initial data");
            eq(0, st.getVersion(), "initial version");
            Stat set = client.setData().withVersion(0).forPath(p, b("v1"));
            eq(1, set.getVersion(), "version after setData(version 0)");
            eq(2, set.getDataLength(), "dataLength after setData");
            check(set.getMzxid() > st.getMzxid(), "mzxid grows");
            eq(st.getCzxid(), set.getCzxid(), "czxid unchanged");
            expectKeeper(KeeperException.Code.BADVERSION, "setData with a stale version",
                    () -> client.setData().withVersion(0).forPath(p, b("stale")));
            Stat st2 = new Stat();
            eq("v1", s(client.getData().storingStatIn(st2).forPath(p)), "data after stale setData");
            eq(1, st2.getVersion(), "version after stale setData");
            eq(2, client.setData().forPath(p, b("v2")).getVersion(), "unconditional setData version");
            eq("v2", s(client.getData().forPath(p)), "data after unconditional setData");
            expectKeeper(KeeperException.Code.NONODE, "getData of a missing node",
                    () -> client.getData().forPath("/smoke/nope"));
        });

        step("get-children", () -> {
            for (String kid : List.of("z", "x", "y")) {
                client.create().creatingParentsIfNeeded().forPath("/smoke/kids/" + kid, b(kid));
            }
            client.create().forPath("/smoke/kids/x/grandchild");
            List<String> kids = new ArrayList<>(client.getChildren().forPath("/smoke/kids"));
            Collections.sort(kids);
            eq(List.of("x", "y", "z"), kids, "children of /smoke/kids");
            Stat st = new Stat();
            client.getChildren().storingStatIn(st).forPath("/smoke/kids");
            eq(3, st.getNumChildren(), "numChildren");
            eq(3, st.getCversion(), "cversion");
            eq(List.of(), client.getChildren().forPath("/smoke/kids/y"), "children of a leaf");
            expectKeeper(KeeperException.Code.NONODE, "getChildren of a missing node",
                    () -> client.getChildren().forPath("/smoke/nope"));
        });

        step("delete", () -> {
            expectKeeper(KeeperException.Code.NOTEMPTY, "delete a node with children",
                    () -> client.delete().forPath("/smoke/kids"));
            expectKeeper(KeeperException.Code.BADVERSION, "delete with a wrong version",
                    () -> client.delete().withVersion(7).forPath("/smoke/kids/y"));
            client.delete().withVersion(0).forPath("/smoke/kids/y");
            check(client.checkExists().forPath("/smoke/kids/y") == null, "/smoke/kids/y deleted");
            client.delete().deletingChildrenIfNeeded().forPath("/smoke/kids");
            check(client.checkExists().forPath("/smoke/kids") == null, "/smoke/kids deleted recursively");
            expectKeeper(KeeperException.Code.NONODE, "delete a missing node",
                    () -> client.delete().forPath("/smoke/kids"));
            // quietly(): no error for a node that is already gone
            client.delete().quietly().forPath("/smoke/kids");
        });

        step("watches", () -> {
            client.create().forPath("/smoke/w", b("0"));
            BlockingQueue<String> fired = new LinkedBlockingQueue<>();
            Watcher once = e -> fired.add("once " + e.getType() + " " + e.getPath());
            client.getData().usingWatcher(once).forPath("/smoke/w");
            client.getChildren().usingWatcher(once).forPath("/smoke/w");
            client.checkExists().usingWatcher(once).forPath("/smoke/w/new");
            other.setData().forPath("/smoke/w", b("1"));
            eq("once NodeDataChanged /smoke/w", next(fired, "data watch"), "data watch event");
            other.create().forPath("/smoke/w/new");
            eq("once NodeCreated /smoke/w/new", next(fired, "exists watch"), "exists watch event");
            eq("once NodeChildrenChanged /smoke/w", next(fired, "child watch"), "child watch event");

            // a removed one-shot watch reports its removal and never fires
            client.getData().usingWatcher(once).forPath("/smoke/w");
            client.watchers().remove(once).ofType(Watcher.WatcherType.Data).forPath("/smoke/w");
            eq("once DataWatchRemoved /smoke/w", next(fired, "removal"), "removed watch event");

            // a persistent watch fires on every change until removed
            Watcher persistent = e -> fired.add("persistent " + e.getType() + " " + e.getPath());
            client.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(persistent).forPath("/smoke/w");
            other.setData().forPath("/smoke/w", b("2"));
            eq("persistent NodeDataChanged /smoke/w", next(fired, "first change"), "persistent watch, 1st");
            other.setData().forPath("/smoke/w", b("3"));
            eq("persistent NodeDataChanged /smoke/w", next(fired, "second change"), "persistent watch, 2nd");
            other.delete().forPath("/smoke/w/new");
            eq("persistent NodeChildrenChanged /smoke/w", next(fired, "child change"), "persistent, children");
            client.watchers().remove(persistent).ofType(Watcher.WatcherType.Any).forPath("/smoke/w");
            eq("persistent PersistentWatchRemoved /smoke/w", next(fired, "removal"), "persistent watch removed");
            other.setData().forPath("/smoke/w", b("4"));

            // sync (background only in Curator) completes after the write above
            CountDownLatch synced = new CountDownLatch(1);
            AtomicInteger syncResult = new AtomicInteger(Integer.MIN_VALUE);
            client.sync().inBackground((c, event) -> {
                if (event.getType() == CuratorEventType.SYNC) {
                    syncResult.set(event.getResultCode());
                    synced.countDown();
                }
            }).forPath("/smoke/w");
            check(synced.await(WAIT_MS, TimeUnit.MILLISECONDS), "sync callback");
            eq(0, syncResult.get(), "sync result code");
            eq("4", s(client.getData().forPath("/smoke/w")), "data after sync");
            Thread.sleep(200);
            eq(null, fired.poll(), "no event after the watches were used or removed");
            expectKeeper(KeeperException.Code.NOWATCHER, "remove a watch that is not set",
                    () -> client.watchers().remove(persistent).ofType(Watcher.WatcherType.Any).forPath("/smoke/w"));
        });

        step("sequential", () -> {
            Pattern item = Pattern.compile("/smoke/seq/item-(\\d{10})");
            String first = client.create().creatingParentsIfNeeded()
                    .withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath("/smoke/seq/item-", b("1"));
            String second = client.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL)
                    .forPath("/smoke/seq/item-", b("2"));
            eq(0, sequenceOf(first, item), "first sequence number");
            eq(1, sequenceOf(second, item), "second sequence number");
            eq("2", s(client.getData().forPath(second)), "data of the second sequential node");
            Stat st = client.checkExists().forPath(first);
            eq(0L, st.getEphemeralOwner(), "persistent sequential ephemeralOwner");

            CuratorFramework temp = newClientAvoiding(client, other);
            long tempSession = sessionId(temp);
            Pattern eph = Pattern.compile("/smoke/seq/eph-(\\d{10})");
            String e1 = temp.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath("/smoke/seq/eph-");
            // the counter is the parent's cversion, shared by every sequential child
            eq(2, sequenceOf(e1, eph), "ephemeral sequence number");
            Stat est = temp.checkExists().forPath(e1);
            eq(tempSession, est.getEphemeralOwner(), "ephemeral sequential ephemeralOwner");
            expectKeeper(KeeperException.Code.NOCHILDRENFOREPHEMERALS, "child of an ephemeral",
                    () -> temp.create().forPath(e1 + "/kid"));
            waitFor("main session to see " + e1, () -> client.checkExists().forPath(e1) != null);
            // Protected ephemeral sequential (the lock recipes' pattern): _c_<uuid>-name<seq>
            String prot = temp.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                    .forPath("/smoke/seq/prot-");
            check(prot.matches("/smoke/seq/_c_[0-9a-f-]{36}-prot-\\d{10}"), "protected path " + prot);
            temp.close();
            waitFor("ephemerals of the closed session to go",
                    () -> client.checkExists().forPath(e1) == null && client.checkExists().forPath(prot) == null);
            List<String> left = new ArrayList<>(client.getChildren().forPath("/smoke/seq"));
            Collections.sort(left);
            eq(List.of("item-0000000000", "item-0000000001"), left, "children after the session closed");
        });

        step("transaction-commit", () -> {
            client.create().forPath("/smoke/tx", b("tx"));
            List<CuratorOp> ops = List.of(
                    client.transactionOp().create().forPath("/smoke/tx/a", b("1")),
                    client.transactionOp().create().forPath("/smoke/tx/b"),
                    client.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL)
                            .forPath("/smoke/tx/s-", b("seq")),
                    client.transactionOp().setData().withVersion(0).forPath("/smoke/tx/a", b("2")),
                    client.transactionOp().check().withVersion(0).forPath("/smoke/tx"),
                    client.transactionOp().delete().forPath("/smoke/tx/b"));
            List<CuratorTransactionResult> results = client.transaction().forOperations(ops);
            eq(6, results.size(), "number of results");
            List<OperationType> types = new ArrayList<>();
            for (CuratorTransactionResult r : results) {
                types.add(r.getType());
                eq(0, r.getError(), "error of " + r.getType() + " " + r.getForPath());
            }
            eq(List.of(OperationType.CREATE, OperationType.CREATE, OperationType.CREATE,
                    OperationType.SET_DATA, OperationType.CHECK, OperationType.DELETE), types, "result types");
            eq("/smoke/tx/a", results.get(0).getResultPath(), "create result path");
            // /smoke/tx's cversion is 2 after the two creates before it in the same transaction
            eq("/smoke/tx/s-0000000002", results.get(2).getResultPath(), "sequential create in a transaction");
            eq(1, results.get(3).getResultStat().getVersion(), "setData result version");
            Stat st = new Stat();
            eq("2", s(client.getData().storingStatIn(st).forPath("/smoke/tx/a")), "data after the transaction");
            eq(1, st.getVersion(), "version after the transaction");
            check(client.checkExists().forPath("/smoke/tx/b") == null, "/smoke/tx/b created and deleted");
            eq("seq", s(client.getData().forPath("/smoke/tx/s-0000000002")), "sequential node data");
            // every op of one transaction commits at the same zxid
            Stat sst = client.checkExists().forPath("/smoke/tx/s-0000000002");
            eq(st.getMzxid(), sst.getCzxid(), "one zxid for the whole transaction");
        });

        step("transaction-abort", () -> {
            List<CuratorOp> ops = List.of(
                    client.transactionOp().create().forPath("/smoke/tx/c", b("c")),
                    client.transactionOp().setData().withVersion(99).forPath("/smoke/tx/a", b("x")),
                    client.transactionOp().delete().forPath("/smoke/tx/a"));
            KeeperException e = expectKeeper(KeeperException.Code.BADVERSION, "transaction with a stale version",
                    () -> client.transaction().forOperations(ops));
            List<OpResult> results = e.getResults();
            check(results != null, "the exception carries the per-op results");
            List<Integer> errs = new ArrayList<>();
            for (OpResult r : results) {
                check(r instanceof OpResult.ErrorResult, "result " + r + " is an ErrorResult");
                errs.add(((OpResult.ErrorResult) r).getErr());
            }
            eq(List.of(KeeperException.Code.OK.intValue(), KeeperException.Code.BADVERSION.intValue(),
                    KeeperException.Code.RUNTIMEINCONSISTENCY.intValue()), errs, "per-op error codes");
            check(client.checkExists().forPath("/smoke/tx/c") == null, "no create from the failed transaction");
            Stat st = new Stat();
            eq("2", s(client.getData().storingStatIn(st).forPath("/smoke/tx/a")), "data unchanged");
            eq(1, st.getVersion(), "version unchanged");
            expectKeeper(KeeperException.Code.NONODE, "transaction on a missing node",
                    () -> client.transaction().forOperations(List.of(
                            client.transactionOp().check().forPath("/smoke/tx/none"))));
        });

        step("curator-cache", () -> {
            client.create().forPath("/smoke/cache", b("root"));
            BlockingQueue<String> events = new LinkedBlockingQueue<>();
            CountDownLatch initialized = new CountDownLatch(1);
            CuratorCacheListener listener = CuratorCacheListener.builder()
                    .forCreates(n -> events.add("create " + n.getPath() + " " + s(n.getData())))
                    .forChanges((o, n) -> events.add(
                            "change " + n.getPath() + " " + s(o.getData()) + "->" + s(n.getData())))
                    .forDeletes(o -> events.add("delete " + o.getPath()))
                    .forInitialized(initialized::countDown)
                    .build();
            try (CuratorCache cache = CuratorCache.build(other, "/smoke/cache")) {
                cache.listenable().addListener(listener);
                cache.start();
                check(initialized.await(WAIT_MS, TimeUnit.MILLISECONDS), "cache initialized");
                eq("create /smoke/cache root", next(events, "initial create"), "initial event");
                client.create().forPath("/smoke/cache/n1", b("a"));
                eq("create /smoke/cache/n1 a", next(events, "create n1"), "event for create");
                client.create().forPath("/smoke/cache/n1/deep", b("d"));
                eq("create /smoke/cache/n1/deep d", next(events, "create deep"), "event for a nested create");
                client.setData().forPath("/smoke/cache/n1", b("b"));
                eq("change /smoke/cache/n1 a->b", next(events, "change n1"), "event for setData");
                eq("b", cache.get("/smoke/cache/n1").map(d -> s(d.getData())).orElse("absent"), "cached data");
                client.delete().deletingChildrenIfNeeded().forPath("/smoke/cache/n1");
                List<String> deletes = new ArrayList<>();
                deletes.add(next(events, "delete"));
                deletes.add(next(events, "delete"));
                Collections.sort(deletes);
                eq(List.of("delete /smoke/cache/n1", "delete /smoke/cache/n1/deep"), deletes, "delete events");
                eq(1, cache.size(), "cache size after the deletes");
                Thread.sleep(200);
                eq(null, events.poll(), "no further events");
            }
        });

        step("mutex", () -> {
            InterProcessMutex first = new InterProcessMutex(client, "/smoke/lock");
            InterProcessMutex second = new InterProcessMutex(other, "/smoke/lock");
            check(first.acquire(WAIT_MS, TimeUnit.MILLISECONDS), "first client acquires");
            AtomicLong acquiredAt = new AtomicLong(0);
            AtomicLong releasedAt = new AtomicLong(0);
            CountDownLatch acquired = new CountDownLatch(1);
            CountDownLatch mayRelease = new CountDownLatch(1);
            ExecutorService pool = Executors.newSingleThreadExecutor();
            // InterProcessMutex is owned by a thread: the second client's acquire and release both
            // run on the contender thread.
            Future<Boolean> contender = pool.submit(() -> {
                boolean got = second.acquire(2 * WAIT_MS, TimeUnit.MILLISECONDS);
                acquiredAt.set(System.nanoTime());
                acquired.countDown();
                if (got) {
                    mayRelease.await(WAIT_MS, TimeUnit.MILLISECONDS);
                    second.release();
                }
                return got;
            });
            waitFor("two lock participants", () -> first.getParticipantNodes().size() == 2);
            Thread.sleep(300);
            eq(0L, acquiredAt.get(), "second client acquired while the first held the lock");
            check(first.isAcquiredInThisProcess(), "first still holds the lock");
            Collection<String> participants = first.getParticipantNodes();
            releasedAt.set(System.nanoTime());
            first.release();
            check(acquired.await(2 * WAIT_MS, TimeUnit.MILLISECONDS), "second client's acquire returns");
            check(acquiredAt.get() > releasedAt.get(), "second acquired only after the first released");
            check(!first.isAcquiredInThisProcess(), "first released");
            eq(1, first.getParticipantNodes().size(), "participants while the second holds it");
            mayRelease.countDown();
            check(contender.get(WAIT_MS, TimeUnit.MILLISECONDS), "second client acquired the lock");
            pool.shutdown();
            check(pool.awaitTermination(WAIT_MS, TimeUnit.MILLISECONDS), "contender thread finished");
            waitFor("no lock nodes after both released", () -> childrenOrEmpty("/smoke/lock").isEmpty());
            eq(2, participants.size(), "participants while contended");
        });

        step("leader-latch", () -> {
            LeaderLatch one = new LeaderLatch(client, "/smoke/leader", "one");
            LeaderLatch two = new LeaderLatch(other, "/smoke/leader", "two");
            one.start();
            two.start();
            waitFor("a leader", () -> one.hasLeadership() || two.hasLeadership());
            waitFor("both participants", () -> one.getParticipants().size() == 2);
            Thread.sleep(200);
            check(one.hasLeadership() != two.hasLeadership(), "exactly one leader (one=" + one.hasLeadership()
                    + ", two=" + two.hasLeadership() + ")");
            LeaderLatch leader = one.hasLeadership() ? one : two;
            LeaderLatch follower = leader == one ? two : one;
            eq(leader.getId(), one.getLeader().getId(), "leader seen by one");
            eq(leader.getId(), two.getLeader().getId(), "leader seen by two");
            check(one.getLeader().isLeader(), "Participant.isLeader");
            leader.close();
            check(follower.await(WAIT_MS, TimeUnit.MILLISECONDS), "leadership moves to " + follower.getId());
            check(follower.hasLeadership(), follower.getId() + " leads");
            eq(follower.getId(), follower.getLeader().getId(), "new leader id");
            eq(1, follower.getParticipants().size(), "participants after the leader closed");
            follower.close();
            waitFor("no latch nodes after both closed", () -> childrenOrEmpty("/smoke/leader").isEmpty());
        });

        step("atomic-long", () -> {
            DistributedAtomicLong mine = new DistributedAtomicLong(client, "/smoke/counter", new RetryNTimes(20, 5));
            DistributedAtomicLong theirs = new DistributedAtomicLong(other, "/smoke/counter", new RetryNTimes(20, 5));
            eq(0L, mine.get().postValue(), "initial value");
            ExecutorService pool = Executors.newFixedThreadPool(2);
            List<Future<Integer>> workers = new ArrayList<>();
            for (DistributedAtomicLong counter : List.of(mine, theirs)) {
                workers.add(pool.submit(() -> {
                    int retries = 0;
                    for (int i = 0; i < 10; i++) {
                        AtomicValue<Long> v = counter.increment();
                        while (!v.succeeded()) {
                            check(++retries < 100, "increment keeps failing");
                            v = counter.increment();
                        }
                        check(v.postValue() == v.preValue() + 1, "post = pre + 1");
                    }
                    return retries;
                }));
            }
            for (Future<Integer> w : workers) {
                w.get(2 * WAIT_MS, TimeUnit.MILLISECONDS);
            }
            pool.shutdown();
            // The other session's server may apply the last commit a moment later.
            waitFor("the other session sees 2 x 10 increments", () -> theirs.get().postValue() == 20L);
            AtomicValue<Long> total = theirs.get();
            check(total.succeeded(), "get succeeded");
            eq(20L, total.postValue(), "value after 2 x 10 increments");
            AtomicValue<Long> cas = mine.compareAndSet(19L, 100L);
            check(!cas.succeeded(), "compareAndSet with a wrong expected value fails");
            cas = mine.compareAndSet(20L, 100L);
            check(cas.succeeded(), "compareAndSet with the right expected value succeeds");
            eq(100L, mine.get().postValue(), "value after compareAndSet (same session)");
            // Another session on another server sees it once that server applied the commit:
            // ZooKeeper promises order, not that every server applies at the same instant.
            waitFor("the other session sees the value after compareAndSet", () -> theirs.get().postValue() == 100L);
        });

        step("shared-count", () -> {
            try (SharedCount mine = new SharedCount(client, "/smoke/shared", 0);
                    SharedCount theirs = new SharedCount(other, "/smoke/shared", 0)) {
                BlockingQueue<String> seen = new LinkedBlockingQueue<>();
                theirs.addListener(new SharedCountListener() {
                    @Override
                    public void countHasChanged(SharedCountReader reader, int newCount) {
                        seen.add(Integer.toString(newCount));
                    }

                    @Override
                    public void stateChanged(CuratorFramework c, ConnectionState state) {
                    }
                });
                mine.start();
                theirs.start();
                eq(0, mine.getCount(), "seed value");
                VersionedValue<Integer> stale = theirs.getVersionedValue();
                check(mine.trySetCount(mine.getVersionedValue(), 7), "trySetCount with the current version");
                eq("7", next(seen, "the other client's count change"), "count seen by the other client");
                eq(7, theirs.getCount(), "other client's count");
                check(!theirs.trySetCount(stale, 8), "trySetCount with a stale version fails");
                theirs.setCount(9);
                waitFor("count 9 on the first client", () -> mine.getCount() == 9);
                eq(9, decodeCount(client.getData().forPath("/smoke/shared")), "stored count");
            }
        });

        step("close", () -> {
            String tracked = client.getZookeeperClient().getCurrentConnectionString();
            check(ports(connectString).containsAll(ports(tracked)),
                    "connect string after EnsembleTracker updates: " + tracked);
            long otherSession = sessionId(other);
            other.create().withMode(CreateMode.EPHEMERAL).forPath("/smoke/bye");
            other.close();
            waitFor("the closed session's ephemeral to go",
                    () -> client.checkExists().forPath("/smoke/bye") == null);
            check(otherSession != sessionId(client), "distinct sessions");
            client.delete().deletingChildrenIfNeeded().forPath("/smoke");
            check(client.checkExists().forPath("/smoke") == null, "everything removed");
            client.close();
        });
    }

    /** SharedCount stores the count as a 4-byte big-endian int. */
    private static int decodeCount(byte[] bytes) {
        check(bytes != null && bytes.length == 4, "stored count is 4 bytes: " + Arrays.toString(bytes));
        return ByteBuffer.wrap(bytes).getInt();
    }

    /**
     * Children of a recipe's parent; a missing parent counts as empty (Curator creates recipe
     * parents as containers, which the server may remove once they are empty).
     */
    private static List<String> childrenOrEmpty(String path) throws Exception {
        try {
            return client.getChildren().forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return List.of();
        }
    }
}
