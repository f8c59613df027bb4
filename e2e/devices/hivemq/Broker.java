// HiveMQ Community Edition as a test broker: the second MQTT broker the
// tests run against beside mosquitto (DEVICELINK_E2E_MQTT_BROKER=hivemq;
// docs/interop.md). The test harness (e2e/src/process.rs) writes the
// configuration (listeners, TLS key stores, packet size) into
// <home>/conf/config.xml; this program starts HiveMQ on it with one
// embedded extension, since HiveMQ lets no client in without a security
// extension: every client when no password file is given, otherwise the
// users of that file (a `user:password` line each), refusing others with
// BAD_USER_NAME_OR_PASSWORD. Signed-in clients may publish and subscribe
// to any topic.
//
//   java -cp '<lib>/*:<classes>' Broker <home> [<password file>]

import com.hivemq.embedded.EmbeddedExtension;
import com.hivemq.embedded.EmbeddedHiveMQ;
import com.hivemq.extension.sdk.api.ExtensionMain;
import com.hivemq.extension.sdk.api.auth.SimpleAuthenticator;
import com.hivemq.extension.sdk.api.auth.parameter.SimpleAuthInput;
import com.hivemq.extension.sdk.api.auth.parameter.SimpleAuthOutput;
import com.hivemq.extension.sdk.api.packets.auth.DefaultAuthorizationBehaviour;
import com.hivemq.extension.sdk.api.packets.connect.ConnackReasonCode;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartOutput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopOutput;
import com.hivemq.extension.sdk.api.services.Services;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

public final class Broker {
    public static void main(String[] args) throws Exception {
        Path home = Path.of(args[0]);
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("extensions"));
        Map<String, String> users = args.length > 1 ? readUsers(Path.of(args[1])) : null;
        EmbeddedExtension auth = EmbeddedExtension.builder()
                .withId("devicelink-e2e-auth")
                .withName("devicelink e2e authentication")
                .withVersion("1")
                .withPriority(0)
                .withStartPriority(1000)
                .withAuthor("devicelink")
                .withExtensionMain(new Auth(users))
                .build();
        EmbeddedHiveMQ broker = EmbeddedHiveMQ.builder()
                .withConfigurationFolder(home.resolve("conf"))
                .withDataFolder(home.resolve("data"))
                .withExtensionsFolder(home.resolve("extensions"))
                .withEmbeddedExtension(auth)
                .build();
        broker.start().join();
        System.out.println("ready");
        // SIGTERM stops the JVM, and HiveMQ with it (its shutdown hook).
        Thread.currentThread().join();
    }

    private static Map<String, String> readUsers(Path file) throws Exception {
        Map<String, String> users = new HashMap<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                users.put(line.substring(0, colon), line.substring(colon + 1));
            }
        }
        return users;
    }

    private static final class Auth implements ExtensionMain {
        private final Map<String, String> users;

        Auth(Map<String, String> users) {
            this.users = users;
        }

        @Override
        public void extensionStart(ExtensionStartInput input, ExtensionStartOutput output) {
            Services.securityRegistry().setAuthenticatorProvider(provider -> (SimpleAuthenticator) this::authenticate);
        }

        private void authenticate(SimpleAuthInput input, SimpleAuthOutput output) {
            if (users != null) {
                Optional<String> user = input.getConnectPacket().getUserName();
                Optional<ByteBuffer> password = input.getConnectPacket().getPassword();
                String given = password.map(p -> StandardCharsets.UTF_8.decode(p.duplicate()).toString()).orElse(null);
                if (user.isEmpty() || given == null || !given.equals(users.get(user.get()))) {
                    output.failAuthentication(ConnackReasonCode.BAD_USER_NAME_OR_PASSWORD, "unknown user or wrong password");
                    return;
                }
            }
            output.getDefaultPermissions().setDefaultBehaviour(DefaultAuthorizationBehaviour.ALLOW);
            output.authenticateSuccessfully();
        }

        @Override
        public void extensionStop(ExtensionStopInput input, ExtensionStopOutput output) {}
    }
}
