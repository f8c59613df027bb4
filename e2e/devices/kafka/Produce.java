// An independent writer into Kafka: Kafka's own Java producer, sending one
// record per line of stdin and printing "sent TOPIC PARTITION OFFSET" once
// Kafka acknowledged it. A line is tab-separated:
//   KEY <TAB> VALUE [<TAB> h:NAME=VALUE]... [<TAB> t:MILLIS]
// (h: a header; t: the record's timestamp, milliseconds since the epoch).
//
//   java -cp 'lib/*:classes' Produce BOOTSTRAP TOPIC
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class Produce {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Produce BOOTSTRAP TOPIC");
            System.exit(2);
        }
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            String line;
            while ((line = in.readLine()) != null) {
                String[] fields = line.split("\t");
                if (fields.length < 2) {
                    System.err.println("skipped, not KEY<TAB>VALUE: " + line);
                    continue;
                }
                Long timestamp = null;
                for (int i = 2; i < fields.length; i++) {
                    if (fields[i].startsWith("t:")) {
                        timestamp = Long.parseLong(fields[i].substring(2));
                    }
                }
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(args[1], null, timestamp,
                    bytes(fields[0]), bytes(fields[1]));
                for (int i = 2; i < fields.length; i++) {
                    if (fields[i].startsWith("h:")) {
                        String[] header = fields[i].substring(2).split("=", 2);
                        record.headers().add(header[0], bytes(header.length > 1 ? header[1] : ""));
                    }
                }
                RecordMetadata sent = producer.send(record).get();
                System.out.println("sent " + sent.topic() + " " + sent.partition() + " " + sent.offset());
                System.out.flush();
            }
        }
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
