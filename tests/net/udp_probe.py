#!/usr/bin/env python3
"""UDP helper for the NAT lab's filtering checks (tests/net/nat_kinds.sh).

  udp_probe.py listen IP PORT STOPFILE
      prints "listening", then one line per datagram that arrives on IP:PORT (its
      payload), until half a second after STOPFILE exists (at most 30 s), then "done"
  udp_probe.py send BIND_IP BIND_PORT DEST_IP DEST_PORT TEXT [BIND_IP BIND_PORT ...]
      sends TEXT from BIND_IP:BIND_PORT to DEST_IP:DEST_PORT, for each group of five
"""
import os
import socket
import sys
import time


def family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def listen(ip, port, stopfile):
    s = socket.socket(family(ip), socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.1)
    print("listening", flush=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if os.path.exists(stopfile):
            # the probes were sent: anything that gets through arrives well within this
            end = min(end, time.monotonic() + 0.5)
        try:
            data, _ = s.recvfrom(2048)
            print(data.decode("ascii", "replace"), flush=True)
        except socket.timeout:
            pass
    print("done", flush=True)


def send(groups):
    socks = {}
    for bind_ip, bind_port, dest_ip, dest_port, text in groups:
        key = (bind_ip, int(bind_port))
        if key not in socks:
            socks[key] = socket.socket(family(bind_ip), socket.SOCK_DGRAM)
            socks[key].bind(key)
        socks[key].sendto(text.encode(), (dest_ip, int(dest_port)))


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "listen":
        listen(a[1], int(a[2]), a[3])
    elif len(a) > 1 and a[0] == "send" and (len(a) - 1) % 5 == 0:
        send([a[i:i + 5] for i in range(1, len(a), 5)])
    else:
        sys.exit(__doc__)


main()
