// Apache Curator (Debian's libcurator-*-java, with the ZooKeeper 3.8 client) against a zkfs
// replica: CRUD, a transaction, InterProcessMutex between two clients, LeaderLatch handing
// over, and a CuratorCache (persistent recursive watch) seeing creates, updates and deletes.
// Usage: java -cp ... CuratorCompat HOST:PORT. One line per check; exit 0 when all pass.

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

public class CuratorCompat {
    static int failures = 0;

    static void check(boolean ok, String what) {
        System.out.println((ok ? "ok: " : "FAIL: ") + what);
        if (!ok)
            failures++;
    }

    static CuratorFramework client(String servers) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(servers, 6000, 5000,
                                                               new RetryNTimes(5, 200));
        c.start();
        if (!c.blockUntilConnected(15, TimeUnit.SECONDS))
            throw new IllegalStateException("no connection to " + servers);
        return c;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static void crud(CuratorFramework c) throws Exception {
        c.create().creatingParentsIfNeeded().forPath("/cur/a/b", b("v1"));
        Stat st = new Stat();
        byte[] data = c.getData().storingStatIn(st).forPath("/cur/a/b");
        check(new String(data, StandardCharsets.UTF_8).equals("v1") && st.getVersion() == 0
                  && st.getDataLength() == 2, "create with parents, then get");
        c.setData().withVersion(0).forPath("/cur/a/b", b("v2"));
        check(c.checkExists().forPath("/cur/a/b").getVersion() == 1, "versioned setData");
        String seq = c.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath("/cur/a/s-");
        check(seq.matches("/cur/a/s-\\d{10}"), "ephemeral sequential " + seq);
        List<CuratorTransactionResult> res = c.transaction().forOperations(
            c.transactionOp().create().forPath("/cur/t", b("t")),
            c.transactionOp().setData().forPath("/cur/a/b", b("v3")),
            c.transactionOp().check().withVersion(2).forPath("/cur/a/b"));
        check(res.size() == 3 && res.get(0).getForPath().equals("/cur/t"), "transaction");
        c.delete().deletingChildrenIfNeeded().forPath("/cur/a");
        check(c.checkExists().forPath("/cur/a") == null, "delete with children");
    }

    static void mutex(CuratorFramework c1, CuratorFramework c2) throws Exception {
        InterProcessMutex m1 = new InterProcessMutex(c1, "/cur/lock");
        InterProcessMutex m2 = new InterProcessMutex(c2, "/cur/lock");
        check(m1.acquire(5, TimeUnit.SECONDS), "client 1 takes the lock");
        check(!m2.acquire(300, TimeUnit.MILLISECONDS), "client 2 cannot take it meanwhile");
        m1.release();
        check(m2.acquire(5, TimeUnit.SECONDS), "client 2 takes it once released");
        m2.release();
    }

    static void leader(CuratorFramework c1, CuratorFramework c2) throws Exception {
        LeaderLatch l1 = new LeaderLatch(c1, "/cur/leader", "one");
        LeaderLatch l2 = new LeaderLatch(c2, "/cur/leader", "two");
        l1.start();
        check(l1.await(10, TimeUnit.SECONDS), "first latch leads");
        l2.start();
        Thread.sleep(300);
        check(!l2.hasLeadership(), "second latch waits");
        l1.close();
        check(l2.await(10, TimeUnit.SECONDS), "second latch leads after the first closes");
        l2.close();
    }

    static void cache(CuratorFramework c1, CuratorFramework c2) throws Exception {
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        c1.create().creatingParentsIfNeeded().forPath("/cur/cache");
        CuratorCache cc = CuratorCache.build(c1, "/cur/cache");
        cc.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> events.add("create " + n.getPath()))
            .forChanges((o, n) -> events.add("change " + n.getPath() + " "
                                             + new String(n.getData(), StandardCharsets.UTF_8)))
            .forDeletes(o -> events.add("delete " + o.getPath()))
            .forInitialized(() -> events.add("init"))
            .build());
        cc.start();
        check(waitFor(events, "init"), "cache initialized");
        c2.create().forPath("/cur/cache/x", b("1"));
        check(waitFor(events, "create /cur/cache/x"), "cache sees another client's create");
        c2.setData().forPath("/cur/cache/x", b("2"));
        check(waitFor(events, "change /cur/cache/x 2"), "cache sees the update");
        c2.create().forPath("/cur/cache/x/deep", b("d"));
        check(waitFor(events, "create /cur/cache/x/deep"), "cache sees a grandchild");
        c2.delete().deletingChildrenIfNeeded().forPath("/cur/cache/x");
        check(waitFor(events, "delete /cur/cache/x"), "cache sees the delete");
        cc.close();
    }

    static boolean waitFor(BlockingQueue<String> q, String want) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        for (;;) {
            long left = end - System.nanoTime();
            String e = q.poll(Math.max(left, 0), TimeUnit.NANOSECONDS);
            if (e == null)
                return false;
            if (e.equals(want))
                return true;
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CuratorCompat HOST:PORT");
            System.exit(2);
        }
        try (CuratorFramework c1 = client(args[0]); CuratorFramework c2 = client(args[0])) {
            crud(c1);
            mutex(c1, c2);
            leader(c1, c2);
            cache(c1, c2);
            c1.delete().deletingChildrenIfNeeded().forPath("/cur");
        } catch (Exception e) {
            e.printStackTrace(System.out);
            failures++;
        }
        System.out.println(failures + " failed");
        System.exit(failures == 0 ? 0 : 1);
    }
}
