#!/usr/bin/env python3
"""fake-remote.py: test double for the remote side of a homeport deployment.

It plays two services of the reference deployment at once:

  * the home file server (HFS) API:   POST /get_hfs
  * the presence service:             POST /login, /heartbeat, /logout

plus two unsigned, test-only GET endpoints, /_state and /_health.

Every product request is a POST with an application/x-www-form-urlencoded
body holding two fields: "data", a JSON object as text, and "hmac",
"<ts>:<hex>" where hex is HMAC-SHA256(secret, data + str(ts)) in lowercase.
See tests/remote/README.md for the options and the exact replies.

Standard library only; runs on Debian 12's python3 (3.11).
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# A signature is accepted when its timestamp is at most this far from now.
SIGNATURE_WINDOW = 120

# The JSON keys each product endpoint requires in "data".
REQUIRED_KEYS = {
    "/get_hfs": ("user", "hfs", "utype"),
    "/login": ("login", "hostname"),
    "/heartbeat": ("login", "hostname"),
    "/logout": ("login", "hostname"),
}

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class Reply:
    """An HTTP answer: status code, body text and content type."""

    def __init__(self, status, body, content_type=TEXT):
        self.status = status
        self.body = body
        self.content_type = content_type

    @classmethod
    def json(cls, status, obj):
        return cls(status, json.dumps(obj), JSON)


class Refused(Exception):
    """Raised while checking a request to answer it at once with `reply`."""

    def __init__(self, status, text):
        super().__init__(text)
        self.reply = Reply(status, text)


# --------------------------------------------------------------------------
# Request checking


def first_field(fields, name):
    """The first value of form field `name`, or None when it is absent."""
    values = fields.get(name)
    return values[0] if values else None


def parse_form(body):
    """Decode an urlencoded body into {name: [values]}; 400 if it is not UTF-8."""
    try:
        text = body.decode("ascii")
        return parse_qs(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "form body is not urlencoded UTF-8")


def check_signature(secret, fields, now):
    """Return the "data" text of a correctly signed request, else raise 403.

    The signature is checked before the time window, so that a well-signed
    but stale request says "expired signature" rather than "bad signature".
    """
    data = first_field(fields, "data")
    mac = first_field(fields, "hmac")
    if data is None or mac is None:
        raise Refused(403, "missing signature")
    ts_text, colon, digest = mac.partition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,20}", ts_text) \
            or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise Refused(403, "bad signature")
    ts = int(ts_text)
    message = (data + str(ts)).encode("utf-8")
    expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest):
        raise Refused(403, "bad signature")
    if abs(now - ts) > SIGNATURE_WINDOW:
        raise Refused(403, "expired signature")
    return data


def parse_data(path, data):
    """Parse the JSON "data" text and check the keys `path` needs (else 400)."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise Refused(400, "data is not valid JSON")
    if not isinstance(obj, dict):
        raise Refused(400, "data is not a JSON object")
    missing = [key for key in REQUIRED_KEYS[path] if key not in obj]
    if missing:
        raise Refused(400, "missing key(s) in data: " + ", ".join(missing))
    for key in ("user", "login", "hostname"):
        if key in REQUIRED_KEYS[path] and not isinstance(obj[key], str):
            raise Refused(400, "%s must be a string" % key)
    return obj


# --------------------------------------------------------------------------
# The fake services


class FakeRemote:
    """State and behaviour of both services; shared by all handler threads.

    Presence deadlines use time.monotonic() so that a clock step on the test
    machine cannot make a presence live forever or vanish early.
    """

    def __init__(self, secret, nbd_port, migrate_seconds, expiry, fail_users):
        self.secret = secret
        self.nbd_port = nbd_port
        self.migrate_seconds = migrate_seconds
        self.expiry = expiry
        self.fail_users = fail_users      # user -> Reply
        self.lock = threading.Lock()
        self.presence = {}                # login -> (hostname, monotonic deadline)
        self.migrated = {}                # user -> monotonic time migration ends
        self.calls = []                   # dicts, see record()

    # -- bookkeeping -------------------------------------------------------

    def record(self, path, data, status, received):
        """Remember one product request for GET /_state."""
        with self.lock:
            self.calls.append({"path": path, "data": data,
                               "status": status, "time": received})

    def live_presence(self, login):
        """(hostname, deadline) of login's live presence or None.  Hold lock."""
        entry = self.presence.get(login)
        if entry is not None and entry[1] <= time.monotonic():
            del self.presence[login]
            entry = None
        return entry

    def state(self):
        """The JSON object served by GET /_state."""
        now = time.monotonic()
        with self.lock:
            presence = {}
            for login in sorted(self.presence):
                entry = self.live_presence(login)
                if entry is not None:
                    presence[login] = {"hostname": entry[0],
                                       "expires_in": entry[1] - now}
            return {"presence": presence, "calls": list(self.calls)}

    # -- product requests --------------------------------------------------

    def handle(self, path, fields):
        """Answer one product POST; returns (Reply, data to record)."""
        data_text = first_field(fields, "data")
        try:
            data_text = check_signature(self.secret, fields, time.time())
            data = parse_data(path, data_text)
        except Refused as refused:
            return refused.reply, data_text
        endpoint = {"/get_hfs": self.get_hfs, "/login": self.login,
                    "/heartbeat": self.heartbeat, "/logout": self.logout}[path]
        return endpoint(data), data

    def get_hfs(self, data):
        user = data["user"]
        if user in self.fail_users:
            return self.fail_users[user]
        self.wait_for_migration(user)
        return Reply.json(200, {"port": self.nbd_port})

    def wait_for_migration(self, user):
        """Sleep until `user`'s image has "moved" to this HFS.

        The first /get_hfs for a user starts a migration of --migrate-seconds;
        a call that arrives while it runs waits for the same end, and later
        calls find the image in place and return at once.
        """
        with self.lock:
            end = self.migrated.get(user)
            if end is None:
                end = time.monotonic() + self.migrate_seconds
                self.migrated[user] = end
        remaining = end - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def refresh(self, login, hostname):
        """Create or refresh login's presence on hostname unless it is live
        elsewhere; login and heartbeat behave the same way."""
        with self.lock:
            entry = self.live_presence(login)
            if entry is not None and entry[0] != hostname:
                return elsewhere(login, entry[0])
            self.presence[login] = (hostname, time.monotonic() + self.expiry)
        return Reply(200, "OK")

    def login(self, data):
        return self.refresh(data["login"], data["hostname"])

    def heartbeat(self, data):
        return self.refresh(data["login"], data["hostname"])

    def logout(self, data):
        """Drop the presence if it is ours; one host may not log out another."""
        login, hostname = data["login"], data["hostname"]
        with self.lock:
            entry = self.live_presence(login)
            if entry is not None:
                if entry[0] != hostname:
                    return elsewhere(login, entry[0])
                del self.presence[login]
        return Reply(200, "OK")


def elsewhere(login, hostname):
    return Reply(423, "%s is already logged in on %s" % (login, hostname))


# --------------------------------------------------------------------------
# HTTP plumbing


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with Content-Length on every reply, so clients keep alive."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-remote/1"
    timeout = 60          # idle keep-alive connections give up after this
    max_body = 1 << 20

    def setup(self):
        # With TLS, the handshake is done here, in the connection's own
        # thread, so that a client stuck in it cannot block accept().
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    @property
    def remote(self):
        return self.server.remote

    def send(self, reply):
        body = reply.body.encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        """The request body; raises Refused (and drops the connection) when
        it cannot be read, since what follows on the socket is then unknown."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise Refused(411, "Content-Length required")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= self.max_body:
            self.close_connection = True
            raise Refused(400, "bad Content-Length")
        return self.rfile.read(length)

    def do_POST(self):
        """Answer a product request and record it, whatever the outcome."""
        received = time.time()
        path = urlsplit(self.path).path
        data = None
        try:
            body = self.read_body()
            if path not in REQUIRED_KEYS:
                raise Refused(404, "no such endpoint")
            reply, data = self.remote.handle(path, parse_form(body))
        except Refused as refused:
            reply = refused.reply
        except Exception:
            traceback.print_exc()
            reply = Reply(500, "fake-remote: internal error")
        self.remote.record(path, data, reply.status, received)
        self.send(reply)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/_health":
            self.send(Reply(200, "ok"))
        elif path == "/_state":
            self.send(Reply.json(200, self.remote.state()))
        elif path in REQUIRED_KEYS:
            self.send(Reply(405, "use POST"))
        else:
            self.send(Reply(404, "no such endpoint"))

    do_HEAD = do_GET

    def log_request(self, code="-", size="-"):
        self.server.log_line("%s %s %s" % (self.command or "-", self.path or "-",
                                            getattr(code, "value", code)))

    def log_message(self, format, *args):
        """Silence http.server's stderr log; --log gets log_request's lines."""


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer (daemon threads: a sleeping migration neither
    blocks other requests nor delays exit) with an optional request log."""

    def __init__(self, address, remote, log_path):
        self.remote = remote
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.log_lock = threading.Lock()
        super().__init__(address, Handler)

    def log_line(self, line):
        if self.log_file is not None:
            with self.log_lock:
                self.log_file.write(line + "\n")
                self.log_file.flush()

    def handle_error(self, request, client_address):
        """Dropped connections and failed TLS handshakes are expected in
        tests (e.g. curl without the CA); only report real bugs."""
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            self.log_line("# %s: %s" % (client_address[0], error))
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# Command line


def parse_fail_user(text):
    """"USER:CODE:BODY" -> (user, Reply); BODY may itself contain colons."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0] or not re.fullmatch(r"[1-5][0-9][0-9]", parts[1]):
        raise argparse.ArgumentTypeError("want USER:CODE:BODY, got %r" % text)
    return parts[0], Reply(int(parts[1]), parts[2])


def loopback_address(text):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an IP address: %r" % text)
    if address not in ipaddress.ip_network("127.0.0.0/8"):
        raise argparse.ArgumentTypeError("refusing to listen on %s: only 127.0.0.0/8" % text)
    return str(address)


def non_negative(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", type=loopback_address, default="127.0.0.1",
                   help="address to bind, in 127.0.0.0/8 (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port, 0 = any free one (default)")
    p.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    p.add_argument("--secret-file", required=True,
                   help="HMAC secret; one trailing newline is ignored")
    p.add_argument("--nbd-port", type=int, default=10809, help="port /get_hfs answers (10809)")
    p.add_argument("--migrate-seconds", type=non_negative, default=0.0,
                   help="delay of the first /get_hfs for each user (0)")
    p.add_argument("--expiry", type=non_negative, default=30.0,
                   help="seconds a presence lives after login/heartbeat (30)")
    p.add_argument("--fail-user", type=parse_fail_user, action="append", default=[],
                   metavar="USER:CODE:BODY", help="make /get_hfs for USER fail (repeatable)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--log", metavar="PATH", help="append 'METHOD PATH STATUS' per request")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        p.error("--port out of range")
    return args


def read_secret(path):
    with open(path, "rb") as f:
        secret = f.read()
    return secret[:-1] if secret.endswith(b"\n") else secret


def write_port_file(path, port):
    """Write atomically: tests poll for the file and must never read it half-written."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def make_server(args):
    remote = FakeRemote(secret=read_secret(args.secret_file),
                        nbd_port=args.nbd_port,
                        migrate_seconds=args.migrate_seconds,
                        expiry=args.expiry,
                        fail_users=dict(args.fail_user))
    server = Server((args.listen, args.port), remote, args.log)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    return server


def main(argv):
    args = parse_args(argv)
    try:
        server = make_server(args)
    except (OSError, ssl.SSLError) as error:
        print("fake-remote: %s" % error, file=sys.stderr)
        return 1

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it cannot run
        # in the main thread that is executing serve_forever().
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_port_file(args.port_file, server.server_address[1])
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
