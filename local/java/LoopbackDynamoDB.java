// DynamoDB Local on loopback only. Its own command line has no host option, and its Jetty
// server listens on every interface; this launcher builds the server through the embedded API
// (ServerRunner.createServerFromCommandLineArgs, so every DynamoDB Local option still works),
// binds each of its connectors to 127.0.0.1 before starting it, and refuses to start if it
// cannot. scripts/with-dynamodb.sh compiles and runs it.
import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDB {
    private static final String HOST = "127.0.0.1";

    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local's server has no connector to bind to " + HOST);
        }
        for (Connector connector : connectors) {
            if (!(connector instanceof ServerConnector)) {
                throw new IllegalStateException("cannot bind a " + connector.getClass().getName() + " to " + HOST);
            }
            ((ServerConnector) connector).setHost(HOST);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + HOST + " only");
    }
}
