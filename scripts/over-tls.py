#!/usr/bin/env python3
"""Runs one of the proxy-security kit's raw-socket scripts (../shared/proxy-security) against a
TLS listener of the proxy: every connection the script opens to 127.0.0.1:PORT is wrapped in TLS
(trusting --ca, naming --sni, offering --alpn) before the script writes a byte, so the script's
raw bytes reach the proxy inside TLS, unchanged. Other connections (the script's own upstream)
stay cleartext.

Usage: over-tls.py --port P --ca CA.pem [--sni localhost] [--alpn http/1.1] SCRIPT [ARGS...]
e.g.   over-tls.py --port 18443 --ca ca.pem ../shared/proxy-security/rawtests.py \\
           --proxy 127.0.0.1:18443 --upstream-port 18190 --name fig-tls

A script that half-closes its side (`shutdown(SHUT_WR)`) cannot do that inside TLS without
closing it; such checks are not comparable over TLS."""
import argparse, os, runpy, socket, ssl, sys

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--ca", required=True)
parser.add_argument("--sni", default="localhost")
parser.add_argument("--alpn", default="http/1.1")
parser.add_argument("script")
parser.add_argument("args", nargs=argparse.REMAINDER)
opts = parser.parse_args()

context = ssl.create_default_context(cafile=opts.ca)
context.set_alpn_protocols(opts.alpn.split(","))
plain_create_connection = socket.create_connection


def create_connection(address, *args, **kwargs):
    sock = plain_create_connection(address, *args, **kwargs)
    host, port = address[0], address[1]
    if port == opts.port and host in ("127.0.0.1", "localhost"):
        timeout = sock.gettimeout()
        sock.settimeout(10)
        sock = context.wrap_socket(sock, server_hostname=opts.sni)
        sock.settimeout(timeout)
    return sock


socket.create_connection = create_connection
sys.argv = [opts.script] + opts.args
sys.path.insert(0, os.path.dirname(os.path.abspath(opts.script)))
runpy.run_path(opts.script, run_name="__main__")
