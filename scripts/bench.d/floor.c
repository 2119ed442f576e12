/*
 * The floor for scripts/bench: the least a UDP DNS responder can do per
 * query on this machine. It answers every datagram with a fixed A record
 * (the query with QR/AA set and one answer appended), in batches of
 * recvmmsg/sendmmsg, with no parsing beyond the header.
 *
 * Usage: floor ADDRESS PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define SIZE 1500

static const unsigned char answer[] = {
    0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x04, 127, 0, 0, 1,
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (fd < 0 || inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1
        || bind(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0)
    {
        perror("bind");
        return 1;
    }
    static unsigned char buf[BATCH][SIZE];
    static struct sockaddr_in peers[BATCH];
    struct iovec iov[BATCH], out_iov[BATCH];
    struct mmsghdr in[BATCH], out[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec) {buf[i], SIZE - sizeof(answer)};
            memset(&in[i], 0, sizeof(in[i]));
            in[i].msg_hdr.msg_name = &peers[i];
            in[i].msg_hdr.msg_namelen = sizeof(peers[i]);
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) {
            continue;
        }
        int replies = 0;
        for (int i = 0; i < n; i++) {
            unsigned len = in[i].msg_len, end = 12;
            if (len < 12 || (buf[i][2] & 0x80)) {
                continue;
            }
            /* keep header + question only (drops an OPT record) */
            while (end < len && buf[i][end] != 0 && buf[i][end] < 64) {
                end += buf[i][end] + 1;
            }
            if (end + 5 > len) {
                continue;
            }
            len = end + 5;
            buf[i][2] = (buf[i][2] & 0x01) | 0x84;
            buf[i][3] = 0;
            buf[i][6] = 0;
            buf[i][7] = 1;
            buf[i][10] = 0;
            buf[i][11] = 0;
            memcpy(buf[i] + len, answer, sizeof(answer));
            out_iov[replies] = (struct iovec) {buf[i], len + sizeof(answer)};
            memset(&out[replies], 0, sizeof(out[replies]));
            out[replies].msg_hdr.msg_name = &peers[i];
            out[replies].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
            out[replies].msg_hdr.msg_iov = &out_iov[replies];
            out[replies].msg_hdr.msg_iovlen = 1;
            replies++;
        }
        for (int sent = 0; sent < replies;) {
            int r = sendmmsg(fd, out + sent, replies - sent, 0);
            if (r <= 0) {
                break;
            }
            sent += r;
        }
    }
}
