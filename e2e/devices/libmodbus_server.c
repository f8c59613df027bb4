/*
 * A Modbus TCP device for the tests on libmodbus, the C library many
 * devices and gateways are built on: the second implementation the Modbus
 * adaptor is tested against, beside pymodbus (docs/interop.md). It holds
 * what e2e/devices/modbus_server.py holds, from a plain contents file the
 * test harness writes (e2e/src/modbus.rs):
 *
 *   unit UNIT                      a unit the server answers for
 *   set UNIT TABLE ADDRESS VALUE   TABLE: coils, discrete, input, holding
 *   hole UNIT TABLE FIRST LAST     addresses answered with exception 0x02
 *
 * Each unit has 2000 coils and discrete inputs and 1000 input and holding
 * registers from address 0; libmodbus answers 0x02 beyond them. A request
 * for a unit it does not hold gets no answer, as a device behind a gateway
 * that is off would give. While the file given with --fail-while exists,
 * every request is answered with exception 0x04. With --idle-close SECONDS
 * a connection silent that long is closed, as many devices do.
 *
 *   libmodbus_server --host 127.0.0.1 --tcp PORT --contents FILE
 *                    [--fail-while FILE] [--idle-close SECONDS]
 */
#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BITS 2000
#define REGISTERS 1000
#define MAX_UNITS 248
#define MAX_HOLES 64
#define MAX_CLIENTS 64

enum table { COILS, DISCRETE, INPUT, HOLDING, TABLES };

struct hole {
    int unit;
    enum table table;
    int first, last;
};

static modbus_mapping_t *units[MAX_UNITS];
static struct hole holes[MAX_HOLES];
static int hole_count;

static int table_of(const char *name) {
    static const char *names[TABLES] = {"coils", "discrete", "input", "holding"};
    for (int t = 0; t < TABLES; t++)
        if (strcmp(name, names[t]) == 0)
            return t;
    return -1;
}

static void die(const char *what) {
    fprintf(stderr, "libmodbus_server: %s\n", what);
    exit(2);
}

static modbus_mapping_t *unit_mapping(int unit) {
    if (unit < 0 || unit >= MAX_UNITS)
        die("unit out of range");
    if (!units[unit]) {
        units[unit] = modbus_mapping_new(BITS, BITS, REGISTERS, REGISTERS);
        if (!units[unit])
            die("no memory for a unit");
    }
    return units[unit];
}

static void load(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file)
        die("cannot open the contents file");
    char word[16], name[16];
    int unit, first, last;
    long value;
    while (fscanf(file, "%15s", word) == 1) {
        if (strcmp(word, "unit") == 0 && fscanf(file, "%d", &unit) == 1) {
            unit_mapping(unit);
        } else if (strcmp(word, "set") == 0 &&
                   fscanf(file, "%d %15s %d %ld", &unit, name, &first, &value) == 4) {
            modbus_mapping_t *m = unit_mapping(unit);
            int t = table_of(name);
            int size = t == COILS || t == DISCRETE ? BITS : REGISTERS;
            if (t < 0 || first < 0 || first >= size)
                die("a set line names no table or address of the unit");
            if (t == COILS)
                m->tab_bits[first] = value != 0;
            else if (t == DISCRETE)
                m->tab_input_bits[first] = value != 0;
            else if (t == INPUT)
                m->tab_input_registers[first] = (uint16_t)value;
            else
                m->tab_registers[first] = (uint16_t)value;
        } else if (strcmp(word, "hole") == 0 &&
                   fscanf(file, "%d %15s %d %d", &unit, name, &first, &last) == 4) {
            int t = table_of(name);
            if (t < 0 || hole_count == MAX_HOLES)
                die("a hole line names no table, or too many holes");
            holes[hole_count++] = (struct hole){unit, t, first, last};
        } else {
            die("a line of the contents file is not unit, set or hole");
        }
    }
    fclose(file);
}

/* The table and address range a request reads or writes, if it has one. */
static int span(const uint8_t *pdu, enum table *table, int *first, int *last) {
    int function = pdu[0];
    int address = (pdu[1] << 8) | pdu[2];
    int count = (pdu[3] << 8) | pdu[4];
    switch (function) {
    case 0x01: *table = COILS; break;
    case 0x02: *table = DISCRETE; break;
    case 0x03: *table = HOLDING; break;
    case 0x04: *table = INPUT; break;
    case 0x05: *table = COILS; count = 1; break;
    case 0x06: *table = HOLDING; count = 1; break;
    case 0x0F: *table = COILS; break;
    case 0x10: *table = HOLDING; break;
    default: return 0;
    }
    *first = address;
    *last = address + (count > 0 ? count : 1) - 1;
    return 1;
}

static int in_hole(int unit, const uint8_t *pdu) {
    enum table table;
    int first, last;
    if (!span(pdu, &table, &first, &last))
        return 0;
    for (int i = 0; i < hole_count; i++)
        if (holes[i].unit == unit && holes[i].table == table && first <= holes[i].last &&
            holes[i].first <= last)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *contents = NULL, *fail_while = NULL;
    int port = 0, idle_close = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--tcp") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--contents") == 0) contents = argv[i + 1];
        else if (strcmp(argv[i], "--fail-while") == 0) fail_while = argv[i + 1];
        else if (strcmp(argv[i], "--idle-close") == 0) idle_close = atoi(argv[i + 1]);
        else die("usage: libmodbus_server --host H --tcp PORT --contents FILE [--fail-while FILE] [--idle-close S]");
    }
    if (!port || !contents)
        die("--tcp and --contents are needed");
    load(contents);

    modbus_t *ctx = modbus_new_tcp(host, port);
    if (!ctx)
        die("modbus_new_tcp failed");
    int listener = modbus_tcp_listen(ctx, MAX_CLIENTS);
    if (listener < 0)
        die(modbus_strerror(errno));
    fprintf(stderr, "libmodbus_server: %s on %s:%d\n", LIBMODBUS_VERSION_STRING, host, port);

    struct pollfd fds[MAX_CLIENTS + 1] = {{.fd = listener, .events = POLLIN}};
    time_t heard[MAX_CLIENTS + 1] = {0};
    int count = 1;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    int header = modbus_get_header_length(ctx);
    for (;;) {
        if (poll(fds, count, 1000) < 0 && errno != EINTR)
            die("poll failed");
        time_t now = time(NULL);
        if (fds[0].revents & POLLIN && count <= MAX_CLIENTS) {
            int client = accept(listener, NULL, NULL);
            if (client >= 0) {
                fds[count] = (struct pollfd){.fd = client, .events = POLLIN};
                heard[count++] = now;
            }
        }
        for (int i = 1; i < count; i++) {
            int drop = 0;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                modbus_set_socket(ctx, fds[i].fd);
                int length = modbus_receive(ctx, query);
                if (length > 0) {
                    heard[i] = now;
                    int unit = query[header - 1];
                    const uint8_t *pdu = query + header;
                    modbus_mapping_t *mapping = unit < MAX_UNITS ? units[unit] : NULL;
                    if (!mapping)
                        continue;
                    if (fail_while && access(fail_while, F_OK) == 0)
                        modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
                    else if (in_hole(unit, pdu))
                        modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
                    else
                        modbus_reply(ctx, query, length, mapping);
                } else if (length < 0) {
                    drop = 1;
                }
            } else if (idle_close && now - heard[i] >= idle_close) {
                fprintf(stderr, "libmodbus_server: closing a connection idle for %d s\n", idle_close);
                drop = 1;
            }
            if (drop) {
                close(fds[i].fd);
                fds[i] = fds[count - 1];
                heard[i] = heard[count - 1];
                count--;
                i--;
            }
        }
    }
}
