/*
 * fuzz_milter_reply.c - libFuzzer target for the milter reply decoder
 * (src/milter/milter_proto.c): what a milter, a network peer, sends the
 * milter role. The first 4 input octets are the packet's length word
 * (milter_packet_length), the rest the packet (command octet + data).
 *
 * Checked besides memory errors: a decoded reply has a known command;
 * header names are 1..MILTER_NAME_MAX octets of ftext; values hold no NUL
 * and no CR/LF but folding (never a folded line of only white space); addresses fit ADDR_PATH_MAX without control
 * octets; a REPLYCODE is one printable line "4xx/5xx X.Y.Z text" of the
 * same class, at most MILTER_SMTP_LINE_MAX octets.
 */
#include "fuzz.h"

#include "milter/milter_proto.h"

static struct milter_reply r;

static void check_value(void)
{
    FUZZ_CHECK(r.value_len <= MILTER_VALUE_MAX);
    for (size_t i = 0; i < r.value_len; i++) {
        unsigned char c = (unsigned char)r.value[i];

        FUZZ_CHECK(c != 0 && c != 0x7f && (c >= 0x20 || c == '\t' || c == '\r' || c == '\n'));
        if (c == '\r')
            FUZZ_CHECK(i + 1 < r.value_len && r.value[i + 1] == '\n');
        if (c == '\n') {
            size_t j = i + 1;

            FUZZ_CHECK(j < r.value_len && (r.value[j] == ' ' || r.value[j] == '\t'));
            while (j < r.value_len && (r.value[j] == ' ' || r.value[j] == '\t'))
                j++;
            FUZZ_CHECK(j < r.value_len && r.value[j] != '\r' && r.value[j] != '\n');
        }
    }
}

static void check_reply(void)
{
    size_t len = strlen(r.reply);

    FUZZ_CHECK(len >= 10 && len <= MILTER_SMTP_LINE_MAX);
    FUZZ_CHECK((r.reply[0] == '4' || r.reply[0] == '5') && r.reply[3] == ' ');
    FUZZ_CHECK(r.reply[4] == r.reply[0] && r.reply[5] == '.');
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(r.reply[i] >= 0x20 && r.reply[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint32_t len;

    if (size < 4 || !milter_packet_length(data, &len, err, sizeof(err)))
        return 0;
    FUZZ_CHECK(len >= 1 && len <= MILTER_PACKET_MAX);
    if (size - 4 < len)
        return 0;
    if (!milter_reply_decode(data + 4, len, &r, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != 0);
        return 0;
    }
    FUZZ_CHECK(strchr("acdrtpsOhim+2-eqby", r.cmd) != NULL && r.cmd != 0);
    switch (r.cmd) {
    case 'h': case 'i': case 'm':
        FUZZ_CHECK(strlen(r.name) >= 1 && strlen(r.name) <= MILTER_NAME_MAX);
        for (const char *p = r.name; *p; p++)
            FUZZ_CHECK(*p > 0x20 && *p < 0x7f && *p != ':');
        check_value();
        break;
    case '+': case '2': case '-': case 'e':
        FUZZ_CHECK(r.value_len <= ADDR_PATH_MAX && (r.value_len > 0 || r.cmd == 'e'));
        for (size_t i = 0; i < r.value_len; i++)
            FUZZ_CHECK((unsigned char)r.value[i] >= 0x20 && r.value[i] != 0x7f);
        FUZZ_CHECK(!r.args || (strlen(r.args) >= 1 && strlen(r.args) <= MILTER_ARGS_MAX));
        break;
    case 'y':
        check_reply();
        break;
    case 'b':
        FUZZ_CHECK(r.body_len == len - 1);
        break;
    case 'O':
        for (int i = 0; i < MILTER_STAGES; i++)
            FUZZ_CHECK(!r.symlist[i] || strlen(r.symlist[i]) <= MILTER_SYMLIST_MAX);
        break;
    default:
        break;
    }
    return 0;
}
