#!/usr/bin/env python3
"""Listen on an AF_UNIX datagram socket as systemd's $NOTIFY_SOCKET would
and append every datagram, newlines replaced by '|', as one line to a log,
and the same line after its arrival time (CLOCK_MONOTONIC seconds) to
LOG_PATH.t, for tests of the watchdog's timing.
Usage: notify_listen.py SOCKET_PATH LOG_PATH (runs until killed)."""
import time
import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(log, "a", buffering=1) as f, open(log + ".t", "a", buffering=1) as ft:
    f.write("LISTENING\n")
    while True:
        data = s.recv(65536)
        line = data.decode("utf-8", "replace").replace("\n", "|")
        f.write(line + "\n")
        ft.write("%.3f %s\n" % (time.monotonic(), line))
