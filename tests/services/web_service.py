"""A job's web service for the proxy tests, standard library only (any python3 on a node runs it).

``python3 web_service.py PORT`` serves on 127.0.0.1... and every address:

- ``GET /headers...``: JSON of the request line's path, the headers as received, and the
  client's port (``peer``: the same while one connection carries the requests);
- ``GET /big?bytes=N``: N bytes (a repeating pattern), with a Content-Length; ``&close=1``
  answers ``Connection: close``, ``&stop=M`` closes after M bytes; ``HEAD`` the head alone;
- ``GET /echo`` with a websocket upgrade: echoes every text or binary message.

The websocket side is the few lines of RFC 6455 an echo needs; the tests' client is the
``websockets`` library, an independent implementation.
"""

import base64
import hashlib
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN = bytes(range(256)) * 256  # 64 KiB
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/echo" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket_echo()
        if url.path == "/big":
            return self.big(parse_qs(url.query))
        body = json.dumps({"path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                           "port": self.server.server_address[1], "peer": self.client_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        url = urlsplit(self.path)
        if url.path != "/big":
            return self.send_error(404)
        self.big(parse_qs(url.query), head_only=True)

    def big(self, query, head_only=False):
        size = int(query.get("bytes", ["1048576"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        if query.get("close"):
            self.send_header("Connection", "close")
        self.end_headers()
        if head_only:
            return
        left = int(query.get("stop", [size])[0])
        if left < size:
            self.close_connection = True
        while left > 0:
            chunk = PATTERN[:min(left, len(PATTERN))]
            self.wfile.write(chunk)
            left -= len(chunk)

    def websocket_echo(self):
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 8:  # close: answer it and stop
                self.wfile.write(encode_frame(8, payload[:2]))
                return
            if opcode == 9:  # ping
                self.wfile.write(encode_frame(10, payload))
            elif opcode in (1, 2):
                self.wfile.write(encode_frame(opcode, payload))
            self.wfile.flush()


def read_frame(stream):
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(length)
    return opcode, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def encode_frame(opcode, payload):
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
