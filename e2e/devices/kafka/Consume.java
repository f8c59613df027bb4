// An independent reader of what reached Kafka: Kafka's own Java consumer,
// printing each record as one JSON line on stdout, flushed, until killed:
//   {"topic":..,"partition":..,"offset":..,"key":..,"value":..,"headers":[[name,value],..]}
// key, value and header values are read as UTF-8 (null when absent).
//
//   java -cp 'lib/*:classes' Consume BOOTSTRAP TOPIC[,TOPIC..] [CLIENT_PROPERTIES_FILE]
import java.io.FileReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.UUID;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class Consume {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Consume BOOTSTRAP TOPIC[,TOPIC..] [CLIENT_PROPERTIES_FILE]");
            System.exit(2);
        }
        Properties config = new Properties();
        if (args.length > 2) {
            try (FileReader extra = new FileReader(args[2])) {
                config.load(extra);
            }
        }
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "e2e-consume-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            consumer.subscribe(Arrays.asList(args[1].split(",")));
            while (true) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    StringBuilder line = new StringBuilder("{\"topic\":").append(quote(r.topic()))
                        .append(",\"partition\":").append(r.partition())
                        .append(",\"offset\":").append(r.offset())
                        .append(",\"key\":").append(text(r.key()))
                        .append(",\"value\":").append(text(r.value()))
                        .append(",\"headers\":[");
                    boolean first = true;
                    for (Header h : r.headers()) {
                        line.append(first ? "" : ",").append('[').append(quote(h.key()))
                            .append(',').append(text(h.value())).append(']');
                        first = false;
                    }
                    System.out.println(line.append("]}"));
                }
                System.out.flush();
            }
        }
    }

    private static String text(byte[] bytes) {
        return bytes == null ? "null" : quote(new String(bytes, StandardCharsets.UTF_8));
    }

    private static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
